"""Rendering for Proton and Service Catalog: bindings, escaping, layout, committed bundles."""

from __future__ import annotations

import io
import re
import tarfile

import jinja2
import proton_bundle_rules
import pytest
import yaml

from mlflow_platform import contract
from mlflow_platform.building import archive, bundle, render
from mlflow_platform.building.proton_schema import input_name


def _cloudformation(item) -> str:
    kind = item.definition.kind
    return item.bundle.files[f"{render.INFRASTRUCTURE_DIR[kind]}/{render.TEMPLATE_FILE}"]


def test_committed_bundles_are_what_the_code_renders(rendered):
    """The same comparison `invoke bundle --check` makes, from this session's synth."""
    assert bundle.differences(bundle.bundle_files(rendered), rendered) == []


def test_bundle_layout_is_what_template_sync_reads(rendered):
    assert set(rendered["mlflow-environment"].bundle.files) == {
        "schema/schema.yaml",
        "infrastructure/manifest.yaml",
        "infrastructure/cloudformation.yaml",
    }
    service = rendered["mlflow-sagemaker-api"].bundle.files
    assert set(service) == {
        "schema/schema.yaml",
        "instance_infrastructure/manifest.yaml",
        "instance_infrastructure/cloudformation.yaml",
        ".template-registration.yaml",
    }
    assert yaml.safe_load(service[".template-registration.yaml"]) == {
        "compatible_environments": ["mlflow-environment:1"]
    }
    # The top key is `infrastructure` in every folder (AWS Proton User Guide, "Wrap up template
    # files"; AWS's sample service templates' instance_infrastructure/manifest.yaml).
    manifest = yaml.safe_load(service["instance_infrastructure/manifest.yaml"])
    assert manifest == {
        "infrastructure": {
            "templates": [
                {
                    "file": "cloudformation.yaml",
                    "rendering_engine": "jinja",
                    "template_language": "cloudformation",
                }
            ]
        }
    }


@pytest.mark.parametrize("name", ["mlflow-environment", "mlflow-sagemaker-api"])
def test_proton_would_register_each_bundle(rendered, name):
    """Checked by rules written from AWS's documentation (tests/proton_bundle_rules.py), the
    same the fake Proton applies at registration, with the template created as publish does."""
    item = rendered[name]
    provisioning = "CUSTOMER_MANAGED" if item.definition.kind == "service" else None
    problems = proton_bundle_rules.problems(
        item.definition.kind, item.bundle.files, pipeline_provisioning=provisioning
    )
    assert problems == []


def test_the_bundle_rules_refuse_what_proton_refuses(rendered):
    files = dict(rendered["mlflow-sagemaker-api"].bundle.files)
    assert proton_bundle_rules.problems("service", files) == [
        "the bundle has no pipeline_infrastructure, so the service template must be created "
        "with pipelineProvisioning CUSTOMER_MANAGED [PIPELINE]"
    ]
    files["instance_infrastructure/manifest.yaml"] = files[
        "instance_infrastructure/manifest.yaml"
    ].replace("infrastructure:", "instance_infrastructure:", 1)
    assert proton_bundle_rules.problems(
        "service", files, pipeline_provisioning="CUSTOMER_MANAGED"
    ) == [
        "instance_infrastructure/manifest.yaml: the top key must be infrastructure, not "
        "['instance_infrastructure'] [BUNDLES]"
    ]


def test_environment_inputs_are_bound_with_jinja(rendered, environment):
    document = yaml.safe_load(_cloudformation(rendered["mlflow-environment"]))
    for name, spec in document["Parameters"].items():
        expected = (
            "{{ environment.name }}"
            if name == "EnvironmentName"
            else f"{{{{ environment.inputs.{input_name(name)} }}}}"
        )
        assert spec["Default"] == expected, name
        assert spec["Type"] == environment["Parameters"][name]["Type"]
    assert document["Resources"] == environment["Resources"]


def test_service_reads_the_contract_from_environment_outputs(rendered):
    text = _cloudformation(rendered["mlflow-sagemaker-api"])
    assert "resolve:ssm" not in text
    used = set(re.findall(r"\{\{ environment\.outputs\.(\w+) \}\}", text))
    assert used == {
        contract.VPC_LINK_ID.name,
        contract.LISTENER_ARN.name,
        contract.ROUTE_AUTHORIZATION.name,
        contract.TEAM_USERS.name,
        contract.TRACKING_HOST.name,
        contract.ENVIRONMENT_NAME.name,
        contract.TLS_SERVER_NAME.name,
        contract.CLIENT_SETTINGS.name,
    }
    document = yaml.safe_load(text)
    assert document["Parameters"]["EnvironmentName"]["Default"] == (
        "{{ environment.outputs.MlflowEnvironmentName }}"
    )
    assert (
        document["Parameters"]["TeamName"]["Default"] == "{{ service_instance.inputs.team_name }}"
    )


def test_service_catalog_templates_are_the_native_templates(rendered, synthesis):
    for name, item in rendered.items():
        assert yaml.safe_load(item.service_catalog) == synthesis.templates[name]
    assert "resolve:ssm:/mlflow-platform/${EnvironmentName}/vpc-link-id" in (
        rendered["mlflow-sagemaker-api"].service_catalog
    )


def test_dynamic_references_survive_jinja():
    template = {
        "Parameters": {"Size": {"Type": "Number", "Default": "1", "Description": "d"}},
        "Resources": {
            "Secret": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Value": "{{resolve:secretsmanager:db:SecretString:password}}"},
            }
        },
    }
    text = render.to_yaml(render.proton_cloudformation(template, kind="environment"))
    out = (
        jinja2.Environment(undefined=jinja2.StrictUndefined)
        .from_string(text)
        .render(environment={"name": "e", "inputs": {"size": 3}})
    )
    document = yaml.safe_load(out)
    assert document["Resources"]["Secret"]["Properties"]["Value"] == (
        "{{resolve:secretsmanager:db:SecretString:password}}"
    )
    assert document["Parameters"]["Size"]["Default"] == "3"


def test_a_contract_value_the_environment_does_not_publish_is_refused():
    template = {
        "Resources": {
            "Thing": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {
                    "Value": {"Fn::Sub": "{{resolve:ssm:/mlflow-platform/${EnvironmentName}/nope}}"}
                },
            }
        }
    }
    with pytest.raises(render.RenderError, match="'nope'"):
        render.proton_cloudformation(template, kind="service")


def test_a_service_registration_is_added_to_the_infrastructure_it_was_linted_from(service):
    """`invoke bundle` renders and lints a service's specs before the environment's major is
    known; the registration joins the same files afterwards."""
    infrastructure = render.proton_infrastructure(service, kind="service")
    assert ".template-registration.yaml" not in infrastructure.files
    with pytest.raises(render.RenderError, match="at least one compatible environment"):
        render.with_registration(infrastructure, kind="service")
    whole = render.with_registration(
        infrastructure, kind="service", compatible_environments=("mlflow-environment:4",)
    )
    assert {k: v for k, v in whole.files.items() if k in infrastructure.files} == (
        infrastructure.files
    )
    assert yaml.safe_load(whole.files[".template-registration.yaml"]) == {
        "compatible_environments": ["mlflow-environment:4"]
    }
    assert set(whole.files) - set(infrastructure.files) == {".template-registration.yaml"}


def test_archives_hold_the_bundle_at_their_root_and_are_reproducible(rendered):
    item = rendered["mlflow-sagemaker-api"]
    with tarfile.open(fileobj=io.BytesIO(item.archive), mode="r:gz") as tar:
        names = sorted(tar.getnames())
        content = tar.extractfile("schema/schema.yaml").read().decode()
    assert names == [
        "instance_infrastructure/cloudformation.yaml",
        "instance_infrastructure/manifest.yaml",
        "schema/schema.yaml",
    ]
    assert content == item.bundle.files["schema/schema.yaml"]
    assert archive.tar_gz(item.bundle.files) == item.archive
