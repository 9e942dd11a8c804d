"""Version decisions and upgrade safety, on the real templates and schemas with edits applied."""

from __future__ import annotations

import copy

import pytest

from mlflow_platform.building.proton_schema import schema
from mlflow_platform.releasing.versioning import schema_compatibility, unsafe_changes


def _body(template: dict, kind: str = "environment") -> dict:
    return schema(template, kind=kind)["schema"]["types"]["EnvironmentInput"]


def _edited(template: dict, edit) -> dict:
    changed = copy.deepcopy(template)
    edit(changed)
    return changed


def test_same_schema_is_no_change(environment):
    assert schema_compatibility(_body(environment), _body(environment)).change == "none"


@pytest.mark.parametrize(
    ("edit", "change", "reason"),
    [
        (lambda t: t["Parameters"].pop("NatGateways"), "major", "input nat_gateways was removed"),
        (
            lambda t: t["Parameters"].update(
                Extra={"Type": "String", "Default": "x", "Description": "d"}
            ),
            "minor",
            "input extra was added, optional",
        ),
        (
            lambda t: t["Parameters"].update(Extra={"Type": "String", "Description": "d"}),
            "major",
            "input extra was added as required",
        ),
        (
            lambda t: t["Parameters"]["NatGateways"].update(AllowedValues=["0", "1"]),
            "major",
            "no longer accepts [2]",
        ),
        (
            lambda t: t["Parameters"]["NatGateways"].update(AllowedValues=["0", "1", "2", "3"]),
            "minor",
            "input nat_gateways changed compatibly",
        ),
        (
            lambda t: t["Parameters"]["DatabaseBackupRetentionDays"].update(MaxValue=30),
            "major",
            "maximum 35 became 30",
        ),
        (
            lambda t: t["Parameters"]["DatabaseBackupRetentionDays"].update(MinValue=0),
            "minor",
            "changed compatibly",
        ),
        (lambda t: t["Parameters"]["NatGateways"].update(Type="String"), "major", "type number"),
        (lambda t: t["Parameters"]["VpcCidr"].update(Default="10.9.0.0/16"), "minor", ""),
    ],
)
def test_schema_changes_are_classified(environment, edit, change, reason):
    result = schema_compatibility(_body(environment), _body(_edited(environment, edit)))
    assert result.change == change
    assert any(reason in r for r in result.reasons), result.reasons


def _one(template: dict, type_name: str) -> str:
    return next(n for n, r in template["Resources"].items() if r["Type"] == type_name)


def test_an_unchanged_template_is_safe(environment, service):
    assert unsafe_changes(environment, environment) == []
    assert unsafe_changes(service, service) == []


def test_changing_a_create_only_property_of_the_database_is_refused(environment):
    cluster = _one(environment, "AWS::RDS::DBCluster")
    new = _edited(
        environment, lambda t: t["Resources"][cluster]["Properties"].update(DatabaseName="other")
    )
    assert unsafe_changes(environment, new) == [
        f"{cluster} (AWS::RDS::DBCluster) would be replaced: create-only property "
        "DatabaseName changes"
    ]


def test_replacement_spreads_through_create_only_references(environment):
    """Naming the subnet group replaces it, and so the cluster whose create-only
    DBSubnetGroupName refers to it, though the cluster's own template text is unchanged."""
    group = _one(environment, "AWS::RDS::DBSubnetGroup")
    cluster = _one(environment, "AWS::RDS::DBCluster")
    new = _edited(
        environment,
        lambda t: t["Resources"][group]["Properties"].update(DBSubnetGroupName="mlflow"),
    )
    assert unsafe_changes(environment, new) == [
        f"{cluster} (AWS::RDS::DBCluster) would be replaced: create-only property "
        f"DBSubnetGroupName refers to {group}, which is replaced"
    ]


def test_deleting_a_stateful_resource_is_refused_and_a_stateless_change_is_not(environment):
    bucket = next(n for n in environment["Resources"] if n.startswith("ArtifactsBucket"))
    gone = _edited(environment, lambda t: t["Resources"].pop(bucket))
    assert unsafe_changes(environment, gone) == [
        f"{bucket} (AWS::S3::Bucket) would be deleted: it is not in the new template"
    ]
    function = _one(environment, "AWS::Lambda::Function")
    tuned = _edited(
        environment, lambda t: t["Resources"][function]["Properties"].update(MemorySize=512)
    )
    assert unsafe_changes(environment, tuned) == []
