"""What the Service Catalog console shows a team: grouped, labelled inputs, the product's
description and support contact, and nothing internal.

- Groups and labels: the template's `AWS::CloudFormation::Interface` metadata (CloudFormation
  User Guide, "AWS::CloudFormation::Interface": `ParameterGroups` with `Label.default` and
  `Parameters`, `ParameterLabels` by logical id). cfn-lint checks the metadata against the
  template's parameters when `invoke bundle` lints the Service Catalog templates.
- Product fields: botocore's servicecatalog model, ProductViewSummary: Owner, ShortDescription,
  Distributor, SupportDescription, SupportEmail, SupportUrl are returned to end users by
  DescribeProduct and SearchProducts; the admin guide names Owner "Provided by" and Distributor
  "Vendor" in the console.
"""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from publishing import ENVIRONMENT, SERVICE, all_ok, run, write_tree

from mlflow_platform.building.proton_schema import PROVIDED, input_name
from mlflow_platform.releasing import config as publish_config
from mlflow_platform.releasing.config import Support
from mlflow_platform.releasing.servicecatalog import MARKER_FILE
from mlflow_platform.templates import TEMPLATES

SHOWN = ("Owner", "ShortDescription", "Distributor", "SupportDescription", "SupportEmail",
         "SupportUrl")  # fmt: skip


@pytest.mark.parametrize(("name", "kind"), TEMPLATES)
def test_every_input_is_grouped_and_labelled_alike_in_both_channels(rendered, name, kind):
    catalog = yaml.safe_load(rendered[name].service_catalog)
    interface = catalog["Metadata"]["AWS::CloudFormation::Interface"]
    grouped = [p for group in interface["ParameterGroups"] for p in group["Parameters"]]
    assert sorted(grouped) == sorted(catalog["Parameters"])  # each input once
    assert all(group["Label"]["default"] for group in interface["ParameterGroups"])
    labels = {name: label["default"] for name, label in interface["ParameterLabels"].items()}
    assert set(labels) == set(catalog["Parameters"])
    # Proton's schema titles each input with the same label.
    schema = yaml.safe_load(rendered[name].bundle.files["schema/schema.yaml"])["schema"]
    (body,) = schema["types"].values()
    titles = {prop: spec["title"] for prop, spec in body["properties"].items()}
    assert titles == {
        input_name(parameter): label
        for parameter, label in labels.items()
        if parameter not in PROVIDED[kind]
    }


def _product(fake, name: str) -> dict:
    (product,) = [p for p in fake.products.values() if p["summary"]["Name"] == name]
    return product["summary"]


def _with_support(config, **support):
    catalog = dataclasses.replace(config.servicecatalog, support=Support(**support))
    return dataclasses.replace(config, servicecatalog=catalog)


def test_the_console_shows_the_products_description_and_support_and_nothing_internal(
    world, config, tmp_path, sources, rendered
):
    configured = _with_support(
        config,
        description="Ask in #mlflow-platform, or open a ticket",
        email="mlflow-platform@example.com",
        url="https://wiki.example.com/mlflow",
    )
    all_ok(run(world, configured, write_tree(tmp_path, sources), targets=("servicecatalog",))[0])
    for name, _ in TEMPLATES:
        summary = _product(world.fake, name)
        template = yaml.safe_load(rendered[name].service_catalog)
        assert {k: summary.get(k, "") for k in SHOWN} == {
            "Owner": "Platform",
            "ShortDescription": template["Description"],
            "Distributor": "",
            "SupportDescription": "Ask in #mlflow-platform, or open a ticket",
            "SupportEmail": "mlflow-platform@example.com",
            "SupportUrl": "https://wiki.example.com/mlflow",
        }
    # The record of a completed publication is in the bucket, not on the product.
    keys = [o["Key"] for o in world.fake.s3.list_objects_v2(Bucket=config.bucket)["Contents"]]
    assert f"{config.prefix}servicecatalog/{ENVIRONMENT}/{MARKER_FILE}" in keys


def test_changed_support_details_and_an_old_digest_on_display_are_put_right(
    world, config, tmp_path, sources
):
    paths = write_tree(tmp_path, sources)
    all_ok(run(world, config, paths, targets=("servicecatalog",))[0])
    # What an earlier publication left where end users see it.
    summary = _product(world.fake, SERVICE)
    summary["Distributor"] = "mlflow-platform state 0123456789abcdef01234567"
    world.fake.s3.delete_object(
        Bucket=config.bucket, Key=f"{config.prefix}servicecatalog/{SERVICE}/{MARKER_FILE}"
    )
    helped = _with_support(config, email="help@example.com")
    outcomes, log = run(world, helped, paths, targets=("servicecatalog",))
    all_ok(outcomes)
    assert _product(world.fake, SERVICE)["Distributor"] == ""
    assert _product(world.fake, SERVICE)["SupportEmail"] == "help@example.com"
    assert _product(world.fake, ENVIRONMENT)["SupportEmail"] == "help@example.com"
    assert log.writes.count("servicecatalog:UpdateProduct") == 2
    assert not [w for w in log.writes if "ProvisioningArtifact" in w]  # same content
    assert run(world, helped, paths, targets=("servicecatalog",))[1].writes == []


@pytest.mark.parametrize(
    ("support", "message"),
    [
        ({"email": "nobody"}, "servicecatalog.support.email = 'nobody': must be an email address"),
        (
            {"url": "wiki.example.com"},
            "servicecatalog.support.url = 'wiki.example.com': must be an http:// or https:// URL",
        ),
        ({"phone": "1"}, "servicecatalog.support.phone: unknown setting"),
    ],
)
def test_support_settings_are_checked_before_anything_runs(support, message):
    with pytest.raises(publish_config.ConfigError) as error:
        publish_config.parse(
            {"bucket": "ok-bucket", "targets": ["proton"], "servicecatalog": {"support": support}},
            source="publish.yaml",
        )
    assert message in str(error.value)


def test_the_fake_refuses_what_the_service_model_refuses(world):
    """Limits botocore leaves to the service (its client checks `min` only): max lengths."""
    import botocore.exceptions

    clients = world.clients()
    with pytest.raises(botocore.exceptions.ClientError) as error:
        clients("servicecatalog").update_product(Id="prod-1", SupportEmail="a" * 255)
    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert "SupportEmail: 255 characters, at most 254" in str(error.value)
    with pytest.raises(botocore.exceptions.ClientError) as error:
        clients("proton").create_service_template(name="bad name!")
    assert "name: 'bad name!' does not match" in str(error.value)


def test_a_principal_removed_from_publish_yaml_loses_access(world, config, tmp_path, sources):
    paths = write_tree(tmp_path, sources)
    contractors = "arn:aws:iam::123456789012:role/Contractors"
    wider = dataclasses.replace(
        config,
        servicecatalog=dataclasses.replace(
            config.servicecatalog, principals=(*config.servicecatalog.principals, contractors)
        ),
    )
    all_ok(run(world, wider, paths, targets=("servicecatalog",))[0])
    (portfolio,) = world.fake.portfolios.values()
    assert contractors in portfolio["principals"]
    outcomes, log = run(world, config, paths, targets=("servicecatalog",))
    all_ok(outcomes)
    assert portfolio["principals"] == list(config.servicecatalog.principals)
    assert log.writes.count("servicecatalog:DisassociatePrincipalFromPortfolio") == 1


def test_a_failed_run_then_a_revert_of_publish_yaml_still_repairs(world, config, tmp_path, sources):
    """The record of the last completed publication is forgotten before a run writes, so
    reverting publish.yaml after a failure does not find it and skip the repair."""
    paths = write_tree(tmp_path, sources)
    all_ok(run(world, config, paths, targets=("servicecatalog",))[0])
    other_role = "arn:aws:iam::123456789012:role/OtherLaunch"
    moved = dataclasses.replace(
        config,
        servicecatalog=dataclasses.replace(config.servicecatalog, launch_role_arn=other_role),
    )
    world.fake.fail("CreateConstraint")  # after the old constraint was deleted
    (outcome,) = run(world, moved, paths, targets=("servicecatalog",))[0]
    assert outcome.error
    launch = [c for c in world.fake.constraints.values() if c["Type"] == "LAUNCH"]
    assert len(launch) == 1  # one product lost its launch constraint
    all_ok(run(world, config, paths, targets=("servicecatalog",))[0])  # publish.yaml reverted
    launch = [c for c in world.fake.constraints.values() if c["Type"] == "LAUNCH"]
    roles = [c["_parameters"]["RoleArn"] for c in launch]
    assert roles == [config.servicecatalog.launch_role_arn] * 2
