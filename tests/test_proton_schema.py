"""Proton schemas derived from the templates' parameters: one declaration, every detail kept."""

from __future__ import annotations

import jsonschema
import pytest

from mlflow_platform.building.proton_schema import input_name, schema


@pytest.mark.parametrize(
    ("parameter", "name"),
    [("VpcCidr", "vpc_cidr"), ("ImageUri", "image_uri"), ("NatGateways", "nat_gateways"),
     ("DatabaseMinCapacity", "database_min_capacity"), ("TaskCpu", "task_cpu")],
)  # fmt: skip
def test_input_names_are_snake_case(parameter, name):
    assert input_name(parameter) == name


def _body(template: dict, kind: str) -> dict:
    document = schema(template, kind=kind)["schema"]
    assert document["format"] == {"openapi": "3.0.0"}
    return document["types"][document[f"{kind}_input_type"]]


def test_environment_schema_keeps_every_constraint(environment):
    body = _body(environment, "environment")
    props = body["properties"]
    assert "environment_name" not in props  # Proton provides it
    assert set(props) == {
        input_name(p) for p in environment["Parameters"] if p != "EnvironmentName"
    }
    assert props["nat_gateways"] == {
        "type": "number",
        "title": "NAT gateways",
        "description": environment["Parameters"]["NatGateways"]["Description"],
        "default": 1,
        "enum": [0, 1, 2],
    }
    assert props["vpc_cidr"]["pattern"] == environment["Parameters"]["VpcCidr"]["AllowedPattern"]
    assert props["database_min_capacity"]["enum"][:2] == [0, 0.5]
    assert props["database_backup_retention_days"]["minimum"] == 1
    assert props["database_backup_retention_days"]["maximum"] == 35
    assert "required" not in body  # every input has a default


@pytest.mark.parametrize(
    ("spec", "valid"),
    [
        ({}, True),
        ({"vpc_cidr": "10.8.0.0/18", "nat_gateways": 2, "auth_mode": "iam"}, True),
        ({"nat_gateways": 3}, False),
        ({"nat_gateways": "1"}, False),
        ({"vpc_cidr": "10.8.0.0/8"}, False),
        ({"database_backup_retention_days": 36}, False),
        ({"auth_mode": "oauth"}, False),
    ],
)
def test_environment_schema_judges_specs(environment, spec, valid):
    body = _body(environment, "environment")
    errors = list(jsonschema.Draft4Validator(body).iter_errors(spec))
    assert (errors == []) is valid, errors


def test_service_schema_has_the_team_inputs(service):
    props = _body(service, "service")["properties"]
    assert {"team_name", "vpc_cidr", "throttling_rate_limit"} <= set(props)
