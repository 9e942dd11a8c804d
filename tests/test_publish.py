"""`invoke publish` against Proton and Service Catalog (botocore's models) and S3 (moto)."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys

import pytest
import yaml
from botocore.stub import Stubber
from publishing import (
    BUCKET,
    DB_CLUSTER,
    ENVIRONMENT,
    ROLE,
    SERVICE,
    TEAM,
    all_ok,
    catalog_artifacts,
    proton_versions,
    run,
    with_optional_input,
    write_tree,
)

from mlflow_platform import aws
from mlflow_platform.building import render
from mlflow_platform.paths import ROOT
from mlflow_platform.releasing import config as publish_config
from mlflow_platform.releasing import release
from mlflow_platform.releasing.publish import publish, releases
from mlflow_platform.templates import TEMPLATES


def test_first_publish_creates_everything_once(world, config, tmp_path, sources):
    paths = write_tree(tmp_path, sources)
    outcomes, _log = run(world, config, paths)
    all_ok(outcomes)
    fake = world.fake
    assert proton_versions(fake, "environment", ENVIRONMENT) == [("1.0", "PUBLISHED")]
    assert proton_versions(fake, "service", SERVICE) == [("1.0", "PUBLISHED")]
    (service_version,) = fake.proton["service"][SERVICE]["versions"]
    assert service_version["compatibleEnvironmentTemplates"] == [
        {"templateName": ENVIRONMENT, "majorVersion": "1"}
    ]
    item = releases(**paths)[0]
    assert (
        f"sha256:{item.proton_sha256}"
        in fake.proton["environment"][ENVIRONMENT]["versions"][0]["description"]
    )
    # The archive Proton registered is the committed bundle, byte for byte.
    registered = fake.proton["environment"][ENVIRONMENT]["versions"][0]["_files"]
    assert registered == {k: v for k, v in item.files.items() if k != ".template-registration.yaml"}
    assert [p["detail"]["DisplayName"] for p in fake.portfolios.values()] == ["MLflow platform"]
    (portfolio,) = fake.portfolios.values()
    assert portfolio["principals"] == [TEAM]
    assert catalog_artifacts(fake, ENVIRONMENT) == ["1.0"] and catalog_artifacts(fake, SERVICE) == [
        "1.0"
    ]
    launch = [c for c in fake.constraints.values() if c["Type"] == "LAUNCH"]
    assert sorted(c["ProductId"] for c in launch) == sorted(portfolio["products"])
    assert {c["_parameters"]["RoleArn"] for c in launch} == {ROLE}
    (product,) = [p for p in fake.products.values() if p["summary"]["Name"] == ENVIRONMENT]
    assert product["artifacts"][0]["_body"] == item.service_catalog
    assert "sha256:" + item.service_catalog_sha256 in product["artifacts"][0]["Description"]


def test_republishing_the_same_content_writes_nothing(world, config, tmp_path, sources):
    paths = write_tree(tmp_path, sources)
    all_ok(run(world, config, paths)[0])
    world.fake.calls.clear()
    objects = world.fake.s3.list_objects_v2(Bucket=BUCKET)["KeyCount"]
    outcomes, log = run(world, config, paths)
    all_ok(outcomes)
    assert log.writes == [] and world.fake.writes() == []
    assert world.fake.s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == objects
    assert all(not p.steps for o in outcomes for p in o.plans)
    assert {p.decision.change for o in outcomes for p in o.plans if p.decision} == {"none"}
    # Proton: one read per template, its version list. Service Catalog: two, the product and
    # the record of its last completed publication in the bucket.
    assert sorted(log.reads) == sorted(
        [f"proton:List{kind.title()}TemplateVersions" for _, kind in TEMPLATES]
        + ["servicecatalog:DescribeProductAsAdmin", "s3:GetObject"] * len(TEMPLATES)
    )


def test_a_configuration_change_is_applied_on_the_next_publish(world, config, tmp_path, sources):
    paths = write_tree(tmp_path, sources)
    all_ok(run(world, config, paths)[0])
    other = "arn:aws:iam::123456789012:role/MLEngineers"
    wider = dataclasses.replace(
        config,
        servicecatalog=dataclasses.replace(
            config.servicecatalog, principals=(*config.servicecatalog.principals, other)
        ),
    )
    outcomes, log = run(world, wider, paths)
    all_ok(outcomes)
    (portfolio,) = world.fake.portfolios.values()
    assert portfolio["principals"] == [TEAM, other]
    assert catalog_artifacts(world.fake, ENVIRONMENT) == ["1.0"]  # the content did not change
    assert log.writes.count("servicecatalog:AssociatePrincipalWithPortfolio") == 1
    assert run(world, wider, paths)[1].writes == []


def test_verify_repairs_what_was_removed_by_hand(world, config, tmp_path, sources):
    paths = write_tree(tmp_path, sources)
    all_ok(run(world, config, paths)[0])
    removed = next(iter(world.fake.constraints))
    del world.fake.constraints[removed]  # a launch constraint deleted in the console
    assert run(world, config, paths)[1].writes == []  # the digest says it was all done
    outcomes, log = run(world, config, paths, verify=True)
    all_ok(outcomes)
    assert log.writes.count("servicecatalog:CreateConstraint") == 1
    assert len(world.fake.constraints) == 2
    assert run(world, config, paths, verify=True)[1].writes == []


def test_a_compatible_change_is_the_next_minor(world, config, tmp_path, sources):
    all_ok(run(world, config, write_tree(tmp_path / "a", sources))[0])
    changed = {**sources, ENVIRONMENT: with_optional_input(sources[ENVIRONMENT])}
    outcomes, _ = run(world, config, write_tree(tmp_path / "b", changed))
    all_ok(outcomes)
    assert proton_versions(world.fake, "environment", ENVIRONMENT) == [
        ("1.0", "PUBLISHED"),
        ("1.1", "PUBLISHED"),
    ]
    assert proton_versions(world.fake, "service", SERVICE) == [("1.0", "PUBLISHED")]
    assert catalog_artifacts(world.fake, ENVIRONMENT) == ["1.0", "1.1"]
    plans = {(o.channel, p.subject): p for o in outcomes for p in o.plans}
    assert plans["proton", ENVIRONMENT].decision.change == "minor"
    assert "input extra_tag was added, optional" in plans["proton", ENVIRONMENT].decision.reasons


def test_a_breaking_change_needs_the_next_major_folder(world, config, tmp_path, sources):
    all_ok(run(world, config, write_tree(tmp_path / "a", sources))[0])
    breaking = copy.deepcopy(sources[ENVIRONMENT])
    breaking["Parameters"]["LogRetentionDays"]["AllowedValues"] = ["30", "90"]
    same_folder = write_tree(tmp_path / "b", {**sources, ENVIRONMENT: breaking})
    outcomes, log = run(world, config, same_folder)
    assert all(o.error for o in outcomes)
    proton = next(o for o in outcomes if o.channel == "proton")
    assert "not compatible with the published 1.0" in proton.error
    assert "input log_retention_days: no longer accepts" in proton.error
    assert f"proton/{ENVIRONMENT}/v2/" in proton.error
    assert log.writes == []
    # The committed tree keeps v1 frozen beside the new v2.
    write_tree(tmp_path / "c", sources)
    new_major = write_tree(tmp_path / "c", {**sources, ENVIRONMENT: breaking}, {ENVIRONMENT: 2})
    assert release.majors(ENVIRONMENT, new_major["proton_dir"]) == [1, 2]
    outcomes, _ = run(world, config, new_major)
    all_ok(outcomes)
    assert proton_versions(world.fake, "environment", ENVIRONMENT) == [
        ("1.0", "PUBLISHED"),
        ("2.0", "PUBLISHED"),
    ]
    assert catalog_artifacts(world.fake, ENVIRONMENT) == ["1.0", "2.0"]
    # The service now names the environment's new major.
    assert world.fake.proton["service"][SERVICE]["versions"][-1][
        "compatibleEnvironmentTemplates"
    ] == [{"templateName": ENVIRONMENT, "majorVersion": "2"}]


def test_replacing_a_stateful_resource_is_refused_unless_allowed(world, config, tmp_path, sources):
    all_ok(run(world, config, write_tree(tmp_path / "a", sources))[0])
    unsafe = copy.deepcopy(sources[ENVIRONMENT])
    unsafe["Resources"][DB_CLUSTER]["Properties"]["DatabaseName"] = "renamed"
    paths = write_tree(tmp_path / "b", {**sources, ENVIRONMENT: unsafe})
    outcomes, log = run(world, config, paths)
    for outcome in outcomes:
        assert f"{DB_CLUSTER} (AWS::RDS::DBCluster) would be replaced" in outcome.error
        assert "DatabaseName" in outcome.error and "--allow-unsafe" in outcome.error
    assert log.writes == []
    outcomes, _ = run(world, config, paths, allow_unsafe=True)
    all_ok(outcomes)
    assert catalog_artifacts(world.fake, ENVIRONMENT) == ["1.0", "1.1"]


def test_a_failed_registration_leaves_no_draft_and_spares_the_other_channel(
    world, config, tmp_path, sources
):
    world.fake.registration_error = "cloudformation.yaml: Template format error"
    outcomes, _ = run(world, config, write_tree(tmp_path, sources))
    proton, catalog = outcomes
    assert "registration failed: cloudformation.yaml: Template format error" in proton.error
    assert "deleted" in proton.error
    assert proton_versions(world.fake, "environment", ENVIRONMENT) == []
    assert catalog.error is None and catalog_artifacts(world.fake, SERVICE) == ["1.0"]


def test_the_same_content_registers_anew_after_a_failed_registration(
    world, config, tmp_path, sources
):
    paths = write_tree(tmp_path, sources)
    world.fake.registration_error = "Internal error, try again"
    assert run(world, config, paths, targets=("proton",))[0][0].error
    world.fake.registration_error = None
    all_ok(run(world, config, paths, targets=("proton",))[0])
    assert proton_versions(world.fake, "environment", ENVIRONMENT) == [("1.0", "PUBLISHED")]


def test_a_version_published_by_hand_cannot_be_compared_and_says_so(
    world, config, tmp_path, sources
):
    all_ok(run(world, config, write_tree(tmp_path / "a", sources), targets=("proton",))[0])
    world.fake.proton["environment"][ENVIRONMENT]["versions"][0]["description"] = "by hand"
    changed = {**sources, ENVIRONMENT: with_optional_input(sources[ENVIRONMENT])}
    outcomes, log = run(world, config, write_tree(tmp_path / "b", changed), targets=("proton",))
    assert outcomes[0].error == (
        f"proton: {ENVIRONMENT} 1.0 was not published by this tooling (no sha256 in its "
        "description): its content is unknown, so compatibility cannot be checked"
    )
    assert log.writes == []


STEPS = [
    "CreateEnvironmentTemplate",
    "CreateEnvironmentTemplateVersion",
    "GetEnvironmentTemplateVersion",
    "UpdateEnvironmentTemplateVersion",
    "CreateServiceTemplateVersion",
    "CreatePortfolio",
    "AssociatePrincipalWithPortfolio",
    "CreateProduct",
    "AssociateProductWithPortfolio",
    "CreateConstraint",
]


@pytest.mark.parametrize("operation", STEPS)
def test_a_rerun_after_a_failure_finishes_without_duplicates(
    world, config, tmp_path, sources, operation
):
    paths = write_tree(tmp_path, sources)
    world.fake.fail(operation)
    outcomes, _ = run(world, config, paths)
    assert any(o.error and operation in o.error for o in outcomes), [o.error for o in outcomes]
    outcomes, _ = run(world, config, paths)
    all_ok(outcomes)
    assert proton_versions(world.fake, "environment", ENVIRONMENT) == [("1.0", "PUBLISHED")]
    assert proton_versions(world.fake, "service", SERVICE) == [("1.0", "PUBLISHED")]
    assert len(world.fake.portfolios) == 1
    assert sorted(p["summary"]["Name"] for p in world.fake.products.values()) == [
        ENVIRONMENT,
        SERVICE,
    ]
    assert catalog_artifacts(world.fake, ENVIRONMENT) == ["1.0"]
    assert len(world.fake.constraints) == 2
    (portfolio,) = world.fake.portfolios.values()
    assert portfolio["principals"] == [TEAM]
    world.fake.calls.clear()
    outcomes, log = run(world, config, paths)
    assert log.writes == []


def test_a_rerun_after_failed_uploads_finishes_without_duplicates(world, config, tmp_path, sources):
    paths = write_tree(tmp_path, sources)
    world.failed_uploads = 2  # the first upload of each channel
    outcomes, _ = run(world, config, paths)
    for outcome in outcomes:
        assert outcome.error.startswith(f"{outcome.channel}: PutObject failed: InternalError")
    assert world.fake.proton["environment"] == {} and world.fake.products == {}
    all_ok(run(world, config, paths)[0])
    assert proton_versions(world.fake, "environment", ENVIRONMENT) == [("1.0", "PUBLISHED")]
    assert catalog_artifacts(world.fake, ENVIRONMENT) == ["1.0"]


def test_an_interrupted_registration_is_resumed_not_duplicated(world, config, tmp_path, sources):
    paths = write_tree(tmp_path, sources)
    world.fake.registration_polls = 5
    world.fake.fail("GetEnvironmentTemplateVersion")  # the run dies while waiting
    outcomes, _ = run(world, config, paths, targets=("proton",))
    assert outcomes[0].error
    assert proton_versions(world.fake, "environment", ENVIRONMENT) == [
        ("1.0", "REGISTRATION_IN_PROGRESS")
    ]
    outcomes, _ = run(world, config, paths, targets=("proton",))
    all_ok(outcomes)
    plan = outcomes[0].plans[0]
    assert [s.operation for s in plan.steps] == [
        "proton:GetEnvironmentTemplateVersion",
        "proton:UpdateEnvironmentTemplateVersion",
    ]
    assert proton_versions(world.fake, "environment", ENVIRONMENT) == [("1.0", "PUBLISHED")]


def test_dry_run_reads_and_plans_but_writes_nothing(world, config, tmp_path, sources):
    outcomes, log = run(world, config, write_tree(tmp_path, sources), dry_run=True)
    all_ok(outcomes)
    assert log.writes == [] and world.fake.writes() == []
    assert world.fake.s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0
    proton = outcomes[0].plans[0].describe()
    assert proton["version"] == "1.0" and proton["change"] == "major"
    assert [c["operation"] for c in proton["calls"]] == [
        "s3:PutObject",
        "proton:CreateEnvironmentTemplate",
        "proton:CreateEnvironmentTemplateVersion",
        "proton:GetEnvironmentTemplateVersion",
        "proton:UpdateEnvironmentTemplateVersion",
    ]
    catalog = [p.describe() for p in outcomes[1].plans]
    assert catalog[0]["calls"][0]["operation"] == "servicecatalog:CreatePortfolio"
    assert "servicecatalog:CreateProduct" in [c["operation"] for c in catalog[1]["calls"]]


def test_older_artifacts_are_deprecated_by_policy(world, tmp_path, sources):
    settings = publish_config.parse(
        {
            "bucket": BUCKET,
            "targets": ["servicecatalog"],
            "servicecatalog": {
                "launch_role_arn": ROLE,
                "provider": "Platform",
                "older_versions": "deprecate",
            },
        },
        source="publish.yaml",
    )
    all_ok(
        run(world, settings, write_tree(tmp_path / "a", sources), targets=("servicecatalog",))[0]
    )
    changed = {**sources, ENVIRONMENT: with_optional_input(sources[ENVIRONMENT])}
    paths = write_tree(tmp_path / "b", changed)
    all_ok(run(world, settings, paths, targets=("servicecatalog",))[0])
    (product,) = [p for p in world.fake.products.values() if p["summary"]["Name"] == ENVIRONMENT]
    assert [(a["Name"], a["Guidance"]) for a in product["artifacts"]] == [
        ("1.0", "DEPRECATED"),
        ("1.1", "DEFAULT"),
    ]
    _outcomes, log = run(world, settings, paths, targets=("servicecatalog",))
    assert log.writes == []


def test_proton_unavailable_names_the_channel_and_the_other_still_publishes(
    world, config, tmp_path, sources
):
    world.fake.fail(
        "ListEnvironmentTemplateVersions", code="SubscriptionRequiredException", times=1
    )
    outcomes, _ = run(world, config, write_tree(tmp_path, sources))
    proton, catalog = outcomes
    assert proton.error.startswith("proton: AWS Proton is not available")
    assert "--target servicecatalog" in proton.error
    assert catalog.error is None and catalog_artifacts(world.fake, ENVIRONMENT) == ["1.0"]


def test_a_missing_bucket_is_named(world, tmp_path, sources):
    settings = publish_config.parse(
        {"bucket": "no-such-bucket", "servicecatalog": {"launch_role_arn": ROLE, "provider": "P"}},
        source="publish.yaml",
    )
    outcomes, _ = run(world, settings, write_tree(tmp_path, sources))
    for outcome in outcomes:
        assert "bucket 'no-such-bucket' does not exist" in outcome.error
        assert outcome.error.startswith(f"{outcome.channel}: ")
    assert world.fake.proton["environment"] == {} and world.fake.products == {}


def test_no_credentials_is_a_clear_error(monkeypatch, tmp_path, config, sources):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    clients = aws.Clients(aws.session())
    outcomes = publish(
        clients=clients,
        config=config,
        items=releases(**write_tree(tmp_path, sources)),
        targets=("proton", "servicecatalog"),
    )
    for outcome in outcomes:
        assert outcome.error == (
            f"{outcome.channel}: no AWS credentials were found: set AWS_PROFILE (or --profile), "
            "or the AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY variables"
        )


def test_no_region_is_a_clear_error(monkeypatch, tmp_path, config, sources):
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    outcomes = publish(
        clients=aws.Clients(aws.session()),
        config=config,
        items=releases(**write_tree(tmp_path, sources)),
        targets=("servicecatalog",),
    )
    assert outcomes[0].error == (
        "servicecatalog: no AWS region is configured: set AWS_REGION or --region"
    )


def test_a_no_op_republish_is_one_read_per_proton_template(monkeypatch, tmp_path, config, sources):
    """botocore's own Stubber: exactly these calls, each checked against the Proton model."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    items = releases(**write_tree(tmp_path, sources))
    clients = aws.Clients(aws.session())
    stubber = Stubber(clients("proton"))
    for item in items:
        stubber.add_response(
            f"list_{item.kind}_template_versions",
            {
                "templateVersions": [
                    {
                        "arn": f"arn:aws:proton:us-east-1:123456789012:{item.kind}-template/x:1.0",
                        "createdAt": "2026-11-01T00:00:00Z",
                        "lastModifiedAt": "2026-11-01T00:00:00Z",
                        "majorVersion": "1",
                        "minorVersion": "0",
                        "status": "PUBLISHED",
                        "templateName": item.name,
                        "description": f"{item.name} 1.0 sha256:{item.proton_sha256}",
                    }
                ]
            },
            {"templateName": item.name},
        )
    with stubber:
        (outcome,) = publish(clients=clients, config=config, items=items, targets=("proton",))
        stubber.assert_no_pending_responses()
    assert outcome.error is None and all(not p.steps for p in outcome.plans)
    assert clients.log.summary()["reads"] == len(items) and clients.log.writes == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"bucket": ""}, "publish.yaml: bucket = '': must name the S3 bucket"),
        (
            {"bucket": "ok-bucket", "targets": ["proton", "codecommit"]},
            "publish.yaml: targets = ['proton', 'codecommit']: must be a non-empty list of proton, "
            "servicecatalog",
        ),
        (
            {"bucket": "ok-bucket", "servicecatalog": {"launch_role_arn": "admin"}},
            "publish.yaml: servicecatalog.launch_role_arn = 'admin': must be the ARN of the IAM",
        ),
        (
            {
                "bucket": "ok-bucket",
                "targets": ["proton"],
                "servicecatalog": {"older_versions": "x"},
            },
            "publish.yaml: servicecatalog.older_versions = 'x': must be one of keep-active, "
            "deprecate, deactivate",
        ),
        (
            {"bucket": "ok-bucket", "targets": ["proton"], "bukket": 1},
            "publish.yaml: bukket: unknown",
        ),
    ],
)
def test_bad_configuration_is_refused_with_the_setting_value_and_rule(settings, message):
    with pytest.raises(publish_config.ConfigError) as error:
        publish_config.parse(settings, source="publish.yaml")
    assert message in str(error.value)


def test_the_committed_configuration_asks_for_a_bucket_before_anything_runs():
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "publish", "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "publish.yaml: bucket = '': must name the S3 bucket" in result.stderr


def test_help_explains_every_option():
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "--help", "publish"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    for option in ("--target", "--template", "--dry-run", "--allow-unsafe", "--json", "--profile"):
        assert option in result.stdout
    assert (
        "Docstring: none" not in result.stdout and "none" not in result.stdout.split("Options")[1]
    )


def test_rendered_bundles_round_trip_through_release(tmp_path, sources):
    paths = write_tree(tmp_path, sources)
    items = releases(**paths)
    assert [i.name for i in items] == [ENVIRONMENT, SERVICE]
    assert items[1].compatible_environments == [(ENVIRONMENT, 1)]
    assert yaml.safe_load(items[0].service_catalog) == yaml.safe_load(
        render.service_catalog_template(sources[ENVIRONMENT])
    )
    # Both channels decide versions from the same inputs: the Proton bundle's schema, read back
    # from disk, declares what the Service Catalog template's parameters declare.
    for item in items:
        inputs = release.proton_inputs(item.files, item.kind)
        assert inputs["properties"], item.name
        assert inputs == release.service_catalog_inputs(item.service_catalog_template, item.kind)


def test_access_denied_names_the_channel_and_the_operation(world, config, tmp_path, sources):
    world.fake.fail("CreatePortfolio", code="AccessDeniedException")
    outcomes, _ = run(world, config, write_tree(tmp_path, sources))
    proton, catalog = outcomes
    assert proton.error is None
    assert catalog.error.startswith("servicecatalog: access denied to CreatePortfolio")
    assert "grant the publishing identity that permission" in catalog.error
    assert world.fake.products == {}
