"""Backend store (Aurora PostgreSQL Serverless v2), artifact store (S3) and auth secrets."""

from __future__ import annotations

import json

from cfn_eval import Evaluator
from helpers import of_type, one_of_type

from tracking_server import settings


def test_database_is_aurora_postgresql_serverless_v2_on_current_engine(environment):
    _, cluster = one_of_type(environment, "AWS::RDS::DBCluster")
    props = cluster["Properties"]
    assert props["Engine"] == "aurora-postgresql"
    assert int(props["EngineVersion"].split(".")[0]) >= 16
    assert props["ServerlessV2ScalingConfiguration"] == {
        "MinCapacity": {"Ref": "DatabaseMinCapacity"},
        "MaxCapacity": {"Ref": "DatabaseMaxCapacity"},
    }
    assert "0" in environment["Parameters"]["DatabaseMinCapacity"]["AllowedValues"]
    for _, instance in of_type(environment, "AWS::RDS::DBInstance").items():
        assert instance["Properties"]["DBInstanceClass"] == "db.serverless"
        assert instance["Properties"]["PubliclyAccessible"] is False


def test_database_is_protected_and_keeps_its_data(environment):
    _, cluster = one_of_type(environment, "AWS::RDS::DBCluster")
    props = cluster["Properties"]
    assert props["StorageEncrypted"] is True
    assert props["DeletionProtection"] is True
    assert props["BackupRetentionPeriod"] == {"Ref": "DatabaseBackupRetentionDays"}
    assert cluster["DeletionPolicy"] == "Snapshot"
    assert cluster["UpdateReplacePolicy"] == "Snapshot"
    assert props["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in props


def test_database_lives_in_the_isolated_subnets(environment):
    _, group = one_of_type(environment, "AWS::RDS::DBSubnetGroup")
    subnet_ids = {s["Ref"] for s in group["Properties"]["SubnetIds"]}
    assert subnet_ids == {n for n in of_type(environment, "AWS::EC2::Subnet") if "Isolated" in n}


def test_database_accepts_only_the_tracking_service(environment):
    _, cluster = one_of_type(environment, "AWS::RDS::DBCluster")
    [db_group] = cluster["Properties"]["VpcSecurityGroupIds"]
    db_group_id = db_group["Fn::GetAtt"][0]
    inline = of_type(environment, "AWS::EC2::SecurityGroup")[db_group_id]["Properties"]
    assert "SecurityGroupIngress" not in inline
    rules = [
        r["Properties"]
        for r in of_type(environment, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"]["Fn::GetAtt"][0] == db_group_id
    ]
    assert len(rules) == 1
    assert rules[0]["FromPort"] == rules[0]["ToPort"] == 5432
    tracking_group = _tracking_security_group(environment)
    assert rules[0]["SourceSecurityGroupId"]["Fn::GetAtt"][0] == tracking_group


def _tracking_security_group(environment: dict) -> str:
    _, service = one_of_type(environment, "AWS::ECS::Service")
    [group] = service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
    return group["Fn::GetAtt"][0]


def _artifact_bucket(environment: dict) -> tuple[str, dict]:
    [(name, bucket)] = [
        (n, b) for n, b in of_type(environment, "AWS::S3::Bucket").items() if "Artifacts" in n
    ]
    return name, bucket


def test_artifact_bucket_is_encrypted_private_versioned_and_retained(environment):
    _name, bucket = _artifact_bucket(environment)
    props = bucket["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["DeletionPolicy"] == "Retain"
    assert bucket["UpdateReplacePolicy"] == "Retain"
    assert props["LoggingConfiguration"]["DestinationBucketName"]


def test_artifact_bucket_refuses_plain_http(environment):
    name, _ = _artifact_bucket(environment)
    [policy] = [
        p
        for p in of_type(environment, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": name}
    ]
    deny = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(deny) == 1
    assert deny[0]["Action"] == "s3:*"


def test_every_bucket_refuses_plain_http_and_public_access(environment):
    buckets = of_type(environment, "AWS::S3::Bucket")
    policies = {
        p["Properties"]["Bucket"]["Ref"]: p["Properties"]["PolicyDocument"]
        for p in of_type(environment, "AWS::S3::BucketPolicy").values()
    }
    assert set(policies) == set(buckets)
    for name, document in policies.items():
        assert any(
            s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s)
            for s in document["Statement"]
        ), name
        assert buckets[name]["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicPolicy"]


def test_load_balancer_log_delivery_uses_the_regional_principal(environment):
    [document] = [
        p["Properties"]["PolicyDocument"]
        for p in of_type(environment, "AWS::S3::BucketPolicy").values()
        if "AccessLogs" in p["Properties"]["Bucket"]["Ref"]
    ]
    [statement] = [s for s in document["Statement"] if s.get("Sid") == "LoadBalancerAccessLogs"]
    old = Evaluator(environment, region="eu-west-1").eval(statement["Principal"])
    assert old == {"AWS": "arn:aws:iam::156460612806:root"}
    new = Evaluator(environment, region="il-central-1").eval(statement["Principal"])
    assert new == {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}


def test_auth_secrets_are_generated_and_retained(environment):
    secrets = {
        n: s for n, s in of_type(environment, "AWS::SecretsManager::Secret").items() if "Auth" in n
    }
    # The admin credential, the session key and the AI gateway's key-encryption passphrase.
    assert sorted(n[: n.index("Auth") + 4 + len(k)] for n in secrets for k in
                  ("Admin", "ServerKey", "GatewayKey") if n.startswith("Auth" + k)) == [
        "AuthAdmin", "AuthGatewayKey", "AuthServerKey"]  # fmt: skip
    for name, secret in secrets.items():
        generated = secret["Properties"]["GenerateSecretString"]
        assert generated["PasswordLength"] >= 32, name
        assert secret["DeletionPolicy"] == "Retain", name
        assert "SecretString" not in secret["Properties"], name
    [admin] = [s for n, s in secrets.items() if "Admin" in n]
    generated = admin["Properties"]["GenerateSecretString"]
    assert json.loads(generated["SecretStringTemplate"]) == {"username": "admin"}
    assert generated["GenerateStringKey"] == "password"


def test_auth_mode_is_an_input(environment):
    spec = environment["Parameters"]["AuthMode"]
    assert spec["AllowedValues"] == list(settings.AUTH_MODES)
    assert spec["Default"] == "basic"
