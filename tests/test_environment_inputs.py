"""The environment's inputs: described, defaulted, constrained; cross-input Rules that bite."""

from __future__ import annotations

import re

import pytest
from cfn_eval import Evaluator


def test_every_input_has_a_description_and_a_default(environment):
    for name, spec in environment["Parameters"].items():
        assert spec.get("Description"), name
        assert "Default" in spec, name


def test_every_default_satisfies_its_own_constraints(environment):
    for name, spec in environment["Parameters"].items():
        default = str(spec["Default"])
        if "AllowedValues" in spec:
            assert default in spec["AllowedValues"], name
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], default), name
        if "MinValue" in spec:
            assert float(spec["MinValue"]) <= float(default) <= float(spec["MaxValue"]), name


def test_default_inputs_pass_every_rule(environment):
    assert Evaluator(environment).failed_rules() == []


@pytest.mark.parametrize(
    ("cidr", "accepted"),
    [
        ("10.0.0.0/16", True),
        ("172.31.128.0/22", True),
        ("192.168.0.0/20", True),
        ("10.0.0.0/8", False),
        ("10.0.0.0/24", False),
        ("10.0.0.256/16", False),
        ("10.0.0/16", False),
        ("not-a-cidr", False),
    ],
)
def test_vpc_cidr_is_validated_as_a_cidr(environment, cidr, accepted):
    spec = environment["Parameters"]["VpcCidr"]
    assert bool(re.fullmatch(spec["AllowedPattern"], cidr)) is accepted
    assert "CIDR" in spec["ConstraintDescription"]


def test_nat_gateway_count_is_an_input_defaulting_to_one(environment):
    spec = environment["Parameters"]["NatGateways"]
    assert spec["Default"] == "1"
    assert spec["AllowedValues"] == ["0", "1", "2"]
    assert "0 gives the VPC no internet egress" in spec["Description"]


@pytest.mark.parametrize(
    ("image", "accepted"),
    [
        ("", True),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlflow-tracking-server:src-1", True),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/mlflow@sha256:" + "a" * 64, True),
        ("docker.io/library/mlflow:latest", False),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlflow", False),
    ],
)
def test_image_uri_is_empty_or_a_pinned_ecr_image(environment, image, accepted):
    spec = environment["Parameters"]["ImageUri"]
    assert bool(re.fullmatch(spec["AllowedPattern"], image)) is accepted


@pytest.mark.parametrize(
    ("inputs", "broken"),
    [
        ({"DatabaseMinCapacity": "4", "DatabaseMaxCapacity": "2"}, "DatabaseMaxCapacity"),
        ({"DatabaseMinCapacity": "0", "DatabaseMaxCapacity": "1"}, None),
        ({"DatabaseMinCapacity": "64", "DatabaseMaxCapacity": "64"}, None),
        ({"MinTasks": "5", "MaxTasks": "3"}, "MaxTasks"),
        ({"MinTasks": "3", "MaxTasks": "3"}, None),
        ({"TaskCpu": "256", "TaskMemory": "4096"}, "TaskMemory"),
        ({"TaskCpu": "4096", "TaskMemory": "4096"}, "TaskMemory"),
        ({"TaskCpu": "300", "TaskMemory": "1024"}, "TaskCpu"),
        ({"TaskCpu": "512", "TaskMemory": "4096"}, None),
        ({"TaskCpu": "4096", "TaskMemory": "30720"}, None),
    ],
)
def test_cross_input_rules_refuse_bad_combinations(environment, inputs, broken):
    failed = Evaluator(environment, parameters=inputs).failed_rules()
    if broken is None:
        assert failed == []
    else:
        assert len(failed) == 1
        assert broken in failed[0]


def test_rule_messages_name_the_inputs_and_the_allowed_values(environment):
    [message] = Evaluator(environment, parameters={"MinTasks": "5", "MaxTasks": "3"}).failed_rules()
    assert message == "MaxTasks must be at least MinTasks (5): one of " + ", ".join(
        str(n) for n in range(5, 21)
    )


CERTIFICATE_ARN = (
    "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
)


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("", True),
        (CERTIFICATE_ARN, True),
        (CERTIFICATE_ARN.replace("arn:aws:", "arn:aws-us-gov:"), True),
        ("arn:aws:acm:eu-west-1:123456789012:certificate/not-a-uuid", False),
        ("arn:aws:iam::123456789012:server-certificate/mlflow", False),
        (CERTIFICATE_ARN.replace("123456789012", "1234"), False),
    ],
)
def test_certificate_arn_is_empty_or_an_acm_certificate(environment, value, accepted):
    spec = environment["Parameters"]["CertificateArn"]
    assert bool(re.fullmatch(spec["AllowedPattern"], value)) is accepted
    assert "ACM certificate ARN" in spec["ConstraintDescription"]


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("", True),
        ("mlflow.internal.example.com", True),
        ("mlflow-1.example.co", True),
        ("MLflow.example.com", False),
        ("mlflow", False),
        ("-mlflow.example.com", False),
        ("mlflow.example.com.", False),
        ("*.example.com", False),
    ],
)
def test_tls_server_name_is_empty_or_a_dns_name(environment, value, accepted):
    spec = environment["Parameters"]["TlsServerName"]
    assert bool(re.fullmatch(spec["AllowedPattern"], value)) is accepted


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"CertificateArn": CERTIFICATE_ARN}, "CertificateArn is given, so TlsServerName must"),
        ({"TlsServerName": "mlflow.example.com"}, "TlsServerName is given, so CertificateArn"),
        ({"CertificateArn": CERTIFICATE_ARN, "TlsServerName": "mlflow.example.com"}, None),
    ],
)
def test_a_certificate_and_its_name_come_together(environment, inputs, message):
    failed = Evaluator(environment, parameters=inputs).failed_rules()
    if message is None:
        assert failed == []
    else:
        [found] = failed
        assert found.startswith(message)
