"""The backend store's hardening in the template: TLS required by the cluster, the server's own
role and secret, Enhanced Monitoring and Performance Insights as inputs; the CA bundle the image
verifies the database against."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cfn_eval import Evaluator
from cfnlint.schema.manager import PROVIDER_SCHEMA_MANAGER
from cryptography import x509
from helpers import of_type, one_of_type, task_container

from environment_template import inputs
from environment_template.tracking_service import CONTAINER_NAME, SETUP_CONTAINER_NAME
from mlflow_platform.building import verify
from tracking_server import settings as names

NO_VALUE = {"Ref": "AWS::NoValue"}
BUNDLE = Path(names.__file__).parent / "certs" / "rds-global-bundle.pem"
# The regions whose templates cfn-lint checks (README: cfn-lint runs against these three).
LINTED_REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")


def _db_instance_schema() -> dict:
    """AWS::RDS::DBInstance as AWS's CloudFormation registry schema describes it (cfn-lint
    ships those schemas)."""
    return PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", "AWS::RDS::DBInstance").schema


def test_the_cluster_requires_tls_through_its_parameter_group(environment):
    """`rds.force_ssl = 1` in a cluster parameter group of the engine's family ("Securing
    Aurora PostgreSQL data with SSL/TLS", Amazon Aurora User Guide)."""
    name, group = one_of_type(environment, "AWS::RDS::DBClusterParameterGroup")
    _, cluster = one_of_type(environment, "AWS::RDS::DBCluster")
    props = group["Properties"]
    major = cluster["Properties"]["EngineVersion"].split(".")[0]
    assert props["Family"] == f"aurora-postgresql{major}"
    assert props["Parameters"] == {"rds.force_ssl": "1"}
    assert cluster["Properties"]["DBClusterParameterGroupName"] == {"Ref": name}


def test_the_server_has_its_own_generated_retained_secret(environment):
    [secret] = [
        s
        for n, s in of_type(environment, "AWS::SecretsManager::Secret").items()
        if "ServerRole" in n
    ]
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["SecretStringTemplate"] == f'{{"username": "{names.SERVER_DB_ROLE}"}}'
    assert generated["GenerateStringKey"] == "password"
    assert generated["PasswordLength"] >= 32
    # No punctuation: the password goes into a URI and MLflow's auth config unescaped-safe.
    assert generated["ExcludePunctuation"] is True
    assert secret["DeletionPolicy"] == secret["UpdateReplacePolicy"] == "Retain"


def _secrets(container: dict) -> dict:
    return {s["Name"]: s["ValueFrom"] for s in container.get("Secrets", [])}


def test_only_the_init_container_gets_the_master_secret_and_both_the_servers(environment):
    """The master password sits in no running container's configured environment: a health
    check or code run in MLflow (same uid, /proc/<pid>/environ) finds none of it."""
    server = task_container(environment, CONTAINER_NAME)
    setup = task_container(environment, SETUP_CONTAINER_NAME)
    [server_secret] = [
        n for n in of_type(environment, "AWS::SecretsManager::Secret") if "ServerRole" in n
    ]
    [cluster] = of_type(environment, "AWS::RDS::DBCluster")
    for container in (server, setup):
        secrets = _secrets(container)
        for setting, key in ((names.DB_USERNAME, "username"), (names.DB_PASSWORD, "password")):
            assert secrets[setting] == {"Fn::Join": ["", [{"Ref": server_secret}, f":{key}::"]]}
        plain = {e["Name"] for e in container.get("Environment", [])}
        assert not plain & set(names.SECRETS)
    master = {names.DB_MASTER_USERNAME, names.DB_MASTER_PASSWORD}
    assert not master & set(_secrets(server))
    assert "MasterUserSecret" not in json.dumps(server)
    for setting, key in ((names.DB_MASTER_USERNAME, "username"),
                         (names.DB_MASTER_PASSWORD, "password")):  # fmt: skip
        assert _secrets(setup)[setting] == {
            "Fn::Join": ["", [{"Fn::GetAtt": [cluster, "MasterUserSecret.SecretArn"]}, f":{key}::"]]
        }
    # Nothing of the server's own: no admin, no session key, no artifact store.
    assert set(_secrets(setup)) == {names.DB_USERNAME, names.DB_PASSWORD, *master}


def test_the_server_starts_only_after_the_init_container_exited_0(environment):
    """Amazon ECS Developer Guide, "Task definition parameters" (Container definitions:
    `dependsOn`, `essential`) and "Container dependency": with condition SUCCESS the dependent
    container starts only once the named container ran to completion and exited 0; a container
    marked not essential may stop without stopping the task. An init container that fails keeps
    the server from starting, and the task stops."""
    _, task = one_of_type(environment, "AWS::ECS::TaskDefinition")
    names_in_order = [c["Name"] for c in task["Properties"]["ContainerDefinitions"]]
    assert sorted(names_in_order) == sorted([CONTAINER_NAME, SETUP_CONTAINER_NAME])
    server = task_container(environment, CONTAINER_NAME)
    setup = task_container(environment, SETUP_CONTAINER_NAME)
    assert server["DependsOn"] == [{"ContainerName": SETUP_CONTAINER_NAME, "Condition": "SUCCESS"}]
    assert server["Essential"] is True and setup["Essential"] is False
    assert "DependsOn" not in setup
    # The image's ENTRYPOINT runs the entrypoint; the command picks the set-up.
    assert setup["Command"] == [names.SETUP_DATABASE]
    assert "Command" not in server
    assert setup["Image"] == server["Image"]


def test_the_init_container_is_locked_down_as_the_server(environment):
    server = task_container(environment, CONTAINER_NAME)
    setup = task_container(environment, SETUP_CONTAINER_NAME)
    assert setup["ReadonlyRootFilesystem"] is True
    assert setup["User"] == server["User"] == "10001:10001"
    assert setup["LogConfiguration"] == server["LogConfiguration"]
    assert setup["MountPoints"] == server["MountPoints"]
    assert "PortMappings" not in setup and "HealthCheck" not in setup
    plain = {e["Name"]: e["Value"] for e in setup["Environment"]}
    server_plain = {e["Name"]: e["Value"] for e in server["Environment"]}
    for name in (names.DB_HOST, names.DB_PORT, names.DB_NAME, "TMPDIR", "HOME"):
        assert plain[name] == server_plain[name], name


def _writer(environment: dict) -> dict:
    [writer] = of_type(environment, "AWS::RDS::DBInstance").values()
    return writer["Properties"]


def test_enhanced_monitoring_is_on_by_default_and_off_at_zero(environment):
    props = _writer(environment)
    assert props["MonitoringInterval"] == {"Ref": "DatabaseMonitoringInterval"}
    condition, role, otherwise = props["MonitoringRoleArn"]["Fn::If"]
    assert otherwise == NO_VALUE  # RDS refuses a role with the interval at 0
    assert Evaluator(environment).condition(condition) is True
    assert (
        Evaluator(environment, parameters={"DatabaseMonitoringInterval": "0"}).condition(condition)
        is False
    )
    role_name = role["Fn::GetAtt"][0]
    role_props = environment["Resources"][role_name]["Properties"]
    [statement] = role_props["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "monitoring.rds.amazonaws.com"}
    [policy] = role_props["ManagedPolicyArns"]
    assert policy["Fn::Join"][1][-1] == (
        ":iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
    )


def test_performance_insights_is_on_by_default_with_the_stacks_key_and_off_at_zero(
    environment,
):
    props = _writer(environment)
    condition = props["EnablePerformanceInsights"]["Fn::If"][0]
    assert props["EnablePerformanceInsights"]["Fn::If"][1:] == [True, False]
    assert props["PerformanceInsightsRetentionPeriod"]["Fn::If"] == [
        condition,
        {"Ref": "DatabasePerformanceInsightsRetention"},
        NO_VALUE,  # RDS refuses a retention period with Performance Insights off
    ]
    _, key, otherwise = props["PerformanceInsightsKMSKeyId"]["Fn::If"]
    assert otherwise == NO_VALUE
    key_resource = environment["Resources"][key["Fn::GetAtt"][0]]
    assert key_resource["Type"] == "AWS::KMS::Key"
    assert key_resource["Properties"]["EnableKeyRotation"] is True
    assert key_resource["DeletionPolicy"] == "Retain"
    assert Evaluator(environment).condition(condition) is True
    off = {"DatabasePerformanceInsightsRetention": "0"}
    assert Evaluator(environment, parameters=off).condition(condition) is False
    assert environment["Parameters"]["DatabasePerformanceInsightsRetention"]["Default"] == "7"


def test_monitoring_inputs_allow_exactly_what_rds_accepts(environment):
    """AWS::RDS::DBInstance, CloudFormation resource reference: MonitoringInterval's valid
    values are 0, 1, 5, 10, 15, 30 and 60; PerformanceInsightsRetentionPeriod's are 7, a number
    of months from 1 to 23 times 31, or 731. Here 0 also turns Performance Insights off."""
    schema = _db_instance_schema()["properties"]
    described = re.search(
        r"Valid Values: ``([0-9 |]+)``", schema["MonitoringInterval"]["description"]
    )
    assert described is not None
    intervals = [int(v) for v in described[1].split("|")]
    assert [int(v) for v in environment["Parameters"]["DatabaseMonitoringInterval"][
        "AllowedValues"]] == intervals  # fmt: skip
    assert list(inputs.MONITORING_INTERVALS) == intervals
    retention = environment["Parameters"]["DatabasePerformanceInsightsRetention"]
    assert [int(v) for v in retention["AllowedValues"]] == [
        0,
        *schema["PerformanceInsightsRetentionPeriod"]["enum"],
    ]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "database_monitoring_interval: 2",
            "input database_monitoring_interval = 2 must be one of [0, 1, 5, 10, 15, 30, 60]",
        ),
        (
            "database_performance_insights_retention: 94",
            "input database_performance_insights_retention = 94 must be one of [0, 7, 31, 62",
        ),
        (
            "database_monitoring_interval: '60'",
            "input database_monitoring_interval = '60' must be a number",
        ),
    ],
)
def test_bad_monitoring_inputs_are_refused_naming_input_value_and_rule(rendered, spec, expected):
    import yaml

    values = yaml.safe_load(spec)
    body = verify.input_body(rendered["mlflow-environment"].bundle)
    problems = verify.spec_problems("spec.yaml", values, body)
    assert any(p.startswith(f"spec.yaml: {expected}") for p in problems), problems


def test_the_bundle_is_rds_cas_with_the_roots_of_the_linted_regions():
    certificates = x509.load_pem_x509_certificates(BUNDLE.read_bytes())
    names_found = set()
    for certificate in certificates:
        [common_name] = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        assert str(common_name.value).startswith("Amazon RDS ")
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.value.ca is True
        names_found.add(common_name.value)
    for region in LINTED_REGIONS:
        for kind in ("RSA2048", "RSA4096", "ECC384"):
            assert f"Amazon RDS {region} Root CA {kind} G1" in names_found


def test_the_image_puts_the_bundle_where_the_server_looks_for_it():
    dockerfile = (BUNDLE.parent.parent / "Dockerfile").read_text()
    assert f"COPY certs/{BUNDLE.name} {names.RDS_CA_BUNDLE}\n" in dockerfile
    assert f"ENV {names.DB_SSL_ROOT_CERT}={names.RDS_CA_BUNDLE}\n" in dockerfile
