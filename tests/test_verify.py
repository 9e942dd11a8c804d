"""Verification: specs against schemas, Jinja with Proton's namespaces, contract, limits."""

from __future__ import annotations

import pytest

from mlflow_platform.building import render, verify
from mlflow_platform.building.bundle import spec_files
from mlflow_platform.paths import ROOT


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def _problems(item, tmp_path, text, kind=None) -> list[str]:
    path = _write(tmp_path, "spec.yaml", text)
    with pytest.raises(verify.VerificationError) as raised:
        verify.render_specs(
            kind=kind or item.definition.kind, bundle=item.bundle, spec_files=[path],
            root=tmp_path,
        )  # fmt: skip
    return raised.value.problems


def test_example_specs_render_with_every_input_bound(rendered):
    for name, item in rendered.items():
        specs = verify.render_specs(
            kind=item.definition.kind, bundle=item.bundle, spec_files=spec_files(name), root=ROOT
        )
        assert len(specs) >= 2, name
        for spec in specs:
            assert "{{" not in spec.text.replace("{{resolve:", ""), spec.spec
    custom = next(
        s
        for s in verify.render_specs(
            kind="environment",
            bundle=rendered["mlflow-environment"].bundle,
            spec_files=spec_files("mlflow-environment"),
            root=ROOT,
        )
        if "custom" in s.spec
    )
    assert "Default: '10.40.0.0/18'" in custom.text
    assert "Default: '2'" in custom.text  # nat_gateways, a number, as CloudFormation takes it


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("nat_gateways: '2'", "input nat_gateways = '2' must be a number"),
        ("nat_gateways: 3", "input nat_gateways = 3 must be one of [0, 1, 2]"),
        ("vpc_cidr: 10.0.0.0/8", "input vpc_cidr = '10.0.0.0/8' must match the pattern"),
        (
            "certificate_arn: arn:aws:acm:eu-west-1:123456789012:certificate/nope",
            "input certificate_arn = 'arn:aws:acm:eu-west-1:123456789012:certificate/nope' must "
            "match the pattern",
        ),
        ("tls_server_name: MLflow", "input tls_server_name = 'MLflow' must match the pattern"),
        (
            "database_backup_retention_days: 40",
            "input database_backup_retention_days = 40 must be at most 35",
        ),
        (
            "vpc_size: 3",
            "input vpc_size = 3 is not an input of this template (inputs: admin_principals, "
            "ai_gateway, auth_mode",
        ),
    ],
)
def test_bad_environment_specs_are_refused_naming_file_input_value_and_rule(
    rendered, tmp_path, spec, expected
):
    problems = _problems(
        rendered["mlflow-environment"], tmp_path, f"proton: EnvironmentSpec\nspec:\n  {spec}\n"
    )
    assert problems and all(p.startswith("spec.yaml: ") for p in problems)
    assert any(expected in p for p in problems), problems


def test_bad_service_instance_is_named(rendered, tmp_path):
    text = (
        "proton: ServiceSpec\ninstances:\n"
        "  - name: good\n    spec: {team_name: good}\n"
        "  - name: bad\n    spec: {team_name: Bad_Team}\n"
    )
    [problem] = _problems(rendered["mlflow-sagemaker-api"], tmp_path, text)
    assert problem.startswith("spec.yaml (instance bad): input team_name = 'Bad_Team'")


def test_a_spec_of_the_wrong_kind_is_refused(rendered, tmp_path):
    [problem] = _problems(rendered["mlflow-environment"], tmp_path, "proton: ServiceSpec\n")
    assert "proton must be EnvironmentSpec" in problem


def test_missing_required_inputs_are_named():
    body = {"type": "object", "properties": {"team": {"type": "string"}}, "required": ["team"]}
    assert verify.spec_problems("s.yaml", {}, body) == [
        "s.yaml: input team is required and missing"
    ]


def test_templates_see_only_the_namespaces_proton_gives_them(rendered, tmp_path):
    """A service instance has no environment.inputs: StrictUndefined makes that an error."""
    item = rendered["mlflow-sagemaker-api"]
    files = dict(item.bundle.files)
    files["instance_infrastructure/cloudformation.yaml"] += (
        "\n# {{ environment.inputs.vpc_cidr }}\n"
    )
    leaky = render.ProtonBundle(files=files)
    path = _write(
        tmp_path, "s.yaml", "proton: ServiceSpec\ninstances:\n  - name: a\n    spec: {}\n"
    )
    with pytest.raises(verify.VerificationError, match="inputs"):
        verify.render_specs(kind="service", bundle=leaky, spec_files=[path], root=tmp_path)


def test_contract_check_names_what_the_environment_lacks(rendered, environment, service):
    assert (
        verify.contract_problems(
            environment=environment,
            service_proton_text="".join(rendered["mlflow-sagemaker-api"].bundle.files.values()),
            service_catalog=service,
        )
        == []
    )
    problems = verify.contract_problems(
        environment={"Outputs": {}, "Resources": {}},
        service_proton_text="{{ environment.outputs.VpcLinkId }}",
        service_catalog=service,
    )
    assert "environment.outputs.VpcLinkId; no such output" in problems[0]
    assert any("vpc-link-id" in p and "writes no such parameter" in p for p in problems)


def test_bundle_limits_are_enforced(rendered):
    item = rendered["mlflow-environment"]
    assert verify.limit_problems("env", item.bundle, len(item.archive)) == []
    big = render.ProtonBundle(files={**item.bundle.files, "schema/schema.yaml": "x" * 60_000})
    [problem] = verify.limit_problems("env", big, 10)
    assert problem == "env/schema/schema.yaml: 60000 bytes; Proton allows 51200"
    many = render.ProtonBundle(files={f"f{i}": "" for i in range(11)})
    assert "11 files" in verify.limit_problems("env", many, 10)[0]
