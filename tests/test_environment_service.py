"""The tracking service on Fargate, its permissions, and the way in (internal ALB, VPC link)."""

from __future__ import annotations

import json

import pytest
from cfn_eval import Evaluator
from helpers import as_list, of_type, one_of_type, policy_statements, task_container

from mlflow_platform import contract
from mlflow_platform.image import tag as image
from tracking_server import settings


def _container(environment: dict) -> dict:
    return task_container(environment)


def test_cluster_has_container_insights(environment):
    _, cluster = one_of_type(environment, "AWS::ECS::Cluster")
    assert {"Name": "containerInsights", "Value": "enhanced"} in cluster["Properties"][
        "ClusterSettings"
    ]


def test_task_size_image_and_platform_are_inputs(environment):
    _, task = one_of_type(environment, "AWS::ECS::TaskDefinition")
    props = task["Properties"]
    assert props["Cpu"] == {"Ref": "TaskCpu"}
    assert props["Memory"] == {"Ref": "TaskMemory"}
    assert props["RequiresCompatibilities"] == ["FARGATE"]
    assert props["NetworkMode"] == "awsvpc"


def test_default_image_is_the_one_built_from_this_version(environment):
    uri = Evaluator(environment).eval(_container(environment)["Image"])
    assert uri == (
        f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/{image.REPOSITORY}:{image.image_tag()}"
    )
    custom = "210987654321.dkr.ecr.us-east-2.amazonaws.com/ml/mlflow:v3"
    assert (
        Evaluator(environment, parameters={"ImageUri": custom}).eval(
            _container(environment)["Image"]
        )
        == custom
    )


@pytest.mark.parametrize(
    ("image_uri", "repository_arn"),
    [
        ("", f"arn:aws:ecr:eu-west-1:123456789012:repository/{image.REPOSITORY}"),
        (
            "210987654321.dkr.ecr.us-east-2.amazonaws.com/ml/mlflow:v3",
            "arn:aws:ecr:us-east-2:210987654321:repository/ml/mlflow",
        ),
        (
            "210987654321.dkr.ecr.us-east-2.amazonaws.com/mlflow@sha256:" + "b" * 64,
            "arn:aws:ecr:us-east-2:210987654321:repository/mlflow",
        ),
    ],
)
def test_image_pull_is_limited_to_the_images_repository(environment, image_uri, repository_arn):
    [statement] = [
        s for s in policy_statements(environment) if s.get("Sid") == "PullTrackingServerImage"
    ]
    evaluator = Evaluator(environment, parameters={"ImageUri": image_uri})
    assert evaluator.eval(statement["Resource"]) == repository_arn


def test_secrets_arrive_as_ecs_secrets_never_as_plain_environment(environment):
    container = _container(environment)
    secret_names = {s["Name"] for s in container["Secrets"]}
    # The master user's are the init container's alone (test_database_hardening.py).
    master = {settings.DB_MASTER_USERNAME, settings.DB_MASTER_PASSWORD}
    assert secret_names == set(settings.SECRETS) - master
    plain = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert not secret_names & set(plain)
    text = json.dumps(plain)
    assert "SecretString" not in text and "resolve:secretsmanager" not in text
    assert "MasterUserSecret" not in text
    for name in plain:
        assert not any(word in name for word in ("PASSWORD", "SECRET", "KEY", "TOKEN")), name


def test_container_settings_tell_the_server_where_things_are(environment):
    plain = {e["Name"]: e["Value"] for e in _container(environment)["Environment"]}
    assert plain[settings.AUTH_MODE] == {"Ref": "AuthMode"}
    assert plain[settings.DB_PORT] == "5432"
    destination = Evaluator(environment).eval(plain[settings.ARTIFACTS_DESTINATION])
    assert destination.startswith("s3://") and destination.endswith("/artifacts")


def test_logs_go_to_a_retained_group_with_the_retention_input(environment):
    options = _container(environment)["LogConfiguration"]["Options"]
    group = of_type(environment, "AWS::Logs::LogGroup")[options["awslogs-group"]["Ref"]]
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert group["DeletionPolicy"] == "Retain"
    for name, other in of_type(environment, "AWS::Logs::LogGroup").items():
        assert other["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
        assert other["DeletionPolicy"] == "Retain", name


def test_container_has_a_health_check(environment):
    check = _container(environment)["HealthCheck"]
    assert check["Command"][0] == "CMD"
    assert check["StartPeriod"] >= 60


def test_service_runs_privately_with_rollback_and_autoscaling(environment):
    _, service = one_of_type(environment, "AWS::ECS::Service")
    props = service["Properties"]
    assert props["DesiredCount"] == {"Ref": "MinTasks"}
    assert Evaluator(environment).eval(props["DesiredCount"]) == "2"
    assert props["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
        "Enable": True,
        "Rollback": True,
    }
    network = props["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert {s["Ref"] for s in network["Subnets"]} == {
        n for n in of_type(environment, "AWS::EC2::Subnet") if "Private" in n
    }
    _, target = one_of_type(environment, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["Properties"]["MinCapacity"] == {"Ref": "MinTasks"}
    assert target["Properties"]["MaxCapacity"] == {"Ref": "MaxTasks"}
    assert environment["Parameters"]["MaxTasks"]["Default"] == "6"
    _, policy = one_of_type(environment, "AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 70
    assert (
        tracking["PredefinedMetricSpecification"]["PredefinedMetricType"]
        == "ECSServiceAverageCPUUtilization"
    )


def test_no_broad_s3_permission_anywhere(environment):
    for statement in policy_statements(environment):
        for action in as_list(statement["Action"]):
            assert action not in ("*", "s3:*"), statement
            assert not action.startswith("s3:") or "*" not in action, statement
    # AWS managed policies without S3 actions: the function's, and RDS Enhanced Monitoring's
    # (CloudWatch Logs, its RDSOSMetrics log group only).
    managed = {
        "AWSLambdaBasicExecutionRole",
        "AWSLambdaVPCAccessExecutionRole",
        "AmazonRDSEnhancedMonitoringRole",
    }
    for role in of_type(environment, "AWS::IAM::Role").values():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            assert Evaluator(environment).eval(arn).rsplit("/", 1)[1] in managed


def test_task_role_touches_only_the_artifact_prefix(environment):
    _, task = one_of_type(environment, "AWS::ECS::TaskDefinition")
    role = task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
    [policy] = [
        p
        for p in of_type(environment, "AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
    ]
    evaluator = Evaluator(environment)
    resources = set()
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        assert statement["Effect"] == "Allow"
        resources |= {json.dumps(evaluator.eval(r)) for r in as_list(statement["Resource"])}
    bucket = next(n for n in of_type(environment, "AWS::S3::Bucket") if "Artifacts" in n)
    assert all(bucket in r for r in resources)
    assert any(r.endswith('/artifacts/*"') for r in resources)


def _security_group_rules(environment: dict, kind: str, group: str) -> list[dict]:
    return [
        r["Properties"]
        for r in of_type(environment, f"AWS::EC2::SecurityGroup{kind}").values()
        if r["Properties"]["GroupId"]["Fn::GetAtt"][0] == group
    ]


def _load_balancer(environment: dict) -> dict:
    _, alb = one_of_type(environment, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    return alb["Properties"]


def test_load_balancer_is_internal_in_private_subnets_with_access_logs(environment):
    alb = _load_balancer(environment)
    assert alb["Scheme"] == "internal"
    assert {s["Ref"] for s in alb["Subnets"]} == {
        n for n in of_type(environment, "AWS::EC2::Subnet") if "Private" in n
    }
    attributes = {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"


def test_tracking_port_is_reachable_only_from_the_load_balancer(environment):
    tracking = next(
        n for n in of_type(environment, "AWS::EC2::SecurityGroup") if n.startswith("Tracking")
    )
    [alb_group] = _load_balancer(environment)["SecurityGroups"]
    [rule] = _security_group_rules(environment, "Ingress", tracking)
    assert rule["FromPort"] == rule["ToPort"] == settings.PORT
    assert rule["SourceSecurityGroupId"] == alb_group
    assert (
        "SecurityGroupIngress"
        not in of_type(environment, "AWS::EC2::SecurityGroup")[tracking]["Properties"]
    )


def test_load_balancer_is_reachable_only_from_the_vpc_link_and_the_team_user_function(
    environment,
):
    [alb_group] = _load_balancer(environment)["SecurityGroups"]
    alb_group_id = alb_group["Fn::GetAtt"][0]
    _, link = one_of_type(environment, "AWS::ApiGatewayV2::VpcLink")
    [link_group] = link["Properties"]["SecurityGroupIds"]
    _, function = one_of_type(environment, "AWS::Lambda::Function")
    [function_group] = function["Properties"]["VpcConfig"]["SecurityGroupIds"]
    rules = _security_group_rules(environment, "Ingress", alb_group_id)
    assert sorted(str(r["SourceSecurityGroupId"]) for r in rules) == sorted(
        [str(link_group), str(function_group)]
    )
    evaluator = Evaluator(environment)  # no certificate: HTTP on 80
    assert all(
        "CidrIp" not in r and evaluator.eval(r["FromPort"]) == evaluator.eval(r["ToPort"]) == 80
        for r in rules
    )
    groups = of_type(environment, "AWS::EC2::SecurityGroup")
    assert "SecurityGroupIngress" not in groups[alb_group_id]["Properties"]
    for group in groups.values():
        for inline in group["Properties"].get("SecurityGroupIngress", []):
            assert inline.get("CidrIp") != "0.0.0.0/0"


def test_vpc_link_spans_the_private_subnets(environment):
    _, link = one_of_type(environment, "AWS::ApiGatewayV2::VpcLink")
    assert {s["Ref"] for s in link["Properties"]["SubnetIds"]} == {
        n for n in of_type(environment, "AWS::EC2::Subnet") if "Private" in n
    }


def test_target_group_checks_the_tracking_servers_health_endpoint(environment):
    _, group = one_of_type(environment, "AWS::ElasticLoadBalancingV2::TargetGroup")
    props = group["Properties"]
    assert props["HealthCheckPath"] == settings.HEALTH_PATH
    assert props["Port"] == settings.PORT
    assert props["TargetType"] == "ip"


def test_contract_values_are_outputs_and_ssm_parameters(environment):
    assert set(environment["Outputs"]) == {v.name for v in contract.ENVIRONMENT_OUTPUTS}
    evaluator = Evaluator(environment, parameters={"EnvironmentName": "research"})
    names = {
        evaluator.eval(p["Properties"]["Name"]): p["Properties"]["Value"]
        for p in of_type(environment, "AWS::SSM::Parameter").values()
    }
    for value in contract.ENVIRONMENT_OUTPUTS:
        parameter = contract.ssm_parameter_name("research", value)
        assert names[parameter] == environment["Outputs"][value.name]["Value"]


def test_team_user_function_runs_the_shipped_code_in_the_private_subnets(environment):
    from environment_template.team_users import HANDLER_SOURCE, INLINE_LIMIT, inline_code

    _, function = one_of_type(environment, "AWS::Lambda::Function")
    props = function["Properties"]
    # The module's statements as they are (the tests run this text: function_harness.py).
    assert props["Code"]["ZipFile"] == inline_code(HANDLER_SOURCE)
    assert len(props["Code"]["ZipFile"]) < INLINE_LIMIT
    assert {s["Ref"] for s in props["VpcConfig"]["SubnetIds"]} == {
        n for n in of_type(environment, "AWS::EC2::Subnet") if "Private" in n
    }
    variables = props["Environment"]["Variables"]
    # Made by CloudFormation for its Region (test_team_isolation.py checks it per Region).
    assert {"Ref": "AWS::Region"} in variables["RESPONSE_URL_PATTERN"]["Fn::Join"][1]
    assert Evaluator(environment).eval(variables["TRACKING_URL"]).startswith("http://<")
    assert "Admin" in json.dumps(variables["ADMIN_SECRET_ARN"])
    assert environment["Outputs"][contract.TEAM_USERS.name]["Value"] == {
        "Fn::GetAtt": [next(iter(of_type(environment, "AWS::Lambda::Function"))), "Arn"]
    }


def test_the_team_user_function_may_only_read_stacks_to_confirm_events(environment):
    """Read-only and scoped: what it needs to check an event against CloudFormation."""
    confirm = [s for s in policy_statements(environment)
               if s.get("Sid") == "ConfirmEventsWithCloudFormation"]  # fmt: skip
    assert len(confirm) == 1
    assert confirm[0]["Effect"] == "Allow"
    assert confirm[0]["Action"] == "cloudformation:DescribeStackResources"
    resource = Evaluator(environment).eval(confirm[0]["Resource"])
    assert resource == "arn:aws:cloudformation:eu-west-1:123456789012:stack/*/*"
    everything = json.dumps(policy_statements(environment))
    for write in ("cloudformation:*", "cloudformation:Update", "cloudformation:Delete",
                  "cloudformation:Create", "cloudformation:SignalResource"):  # fmt: skip
        assert write not in everything


def _tracking_group(environment: dict) -> str:
    return next(
        n for n in of_type(environment, "AWS::EC2::SecurityGroup") if n.startswith("Tracking")
    )


def test_tracking_tasks_reach_only_https_endpoints_and_the_database(environment):
    """443 anywhere (AWS endpoints: ECR, Logs, Secrets Manager, S3) and 5432 to the database's
    group; nothing else. DNS to the VPC's resolver is not filtered by security groups (Amazon
    VPC User Guide, "Security group rules")."""
    tracking = _tracking_group(environment)
    inline = of_type(environment, "AWS::EC2::SecurityGroup")[tracking]["Properties"]
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"], r["CidrIp"])
            for r in inline["SecurityGroupEgress"]] == [("tcp", 443, 443, "0.0.0.0/0")]  # fmt: skip
    [database_rule] = _security_group_rules(environment, "Egress", tracking)
    database_group = next(
        n for n in of_type(environment, "AWS::EC2::SecurityGroup") if n.startswith("Database")
    )
    assert database_rule["DestinationSecurityGroupId"] == {
        "Fn::GetAtt": [database_group, "GroupId"]
    }
    assert (database_rule["IpProtocol"], database_rule["FromPort"], database_rule["ToPort"]) == (
        "tcp",
        5432,
        5432,
    )
    # The database admits the tracking group on the same port (the other half of the pair).
    [admitted] = _security_group_rules(environment, "Ingress", database_group)
    assert admitted["SourceSecurityGroupId"] == {"Fn::GetAtt": [tracking, "GroupId"]}
    assert admitted["FromPort"] == 5432


def test_every_security_group_limits_its_egress(environment):
    for name, group in of_type(environment, "AWS::EC2::SecurityGroup").items():
        for rule in group["Properties"].get("SecurityGroupEgress", []):
            assert rule["IpProtocol"] != "-1", name


def test_container_root_is_read_only_with_a_writable_scratch_volume(environment):
    from environment_template.tracking_service import SCRATCH_PATH

    container = _container(environment)
    assert container["ReadonlyRootFilesystem"] is True
    # The Dockerfile's user, in the task definition too (uid:gid).
    assert container["User"] == "10001:10001"
    [mount] = container["MountPoints"]
    assert mount == {"ContainerPath": SCRATCH_PATH, "ReadOnly": False, "SourceVolume": "scratch"}
    _, task = one_of_type(environment, "AWS::ECS::TaskDefinition")
    # A bind mount with no host: Fargate task storage (Amazon ECS Developer Guide, "Use bind
    # mounts with Amazon ECS"), gone with the task.
    assert task["Properties"]["Volumes"] == [{"Name": "scratch"}]
    plain = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert plain["TMPDIR"] == plain["HOME"] == SCRATCH_PATH


def test_the_image_exposes_its_scratch_directory_to_the_task_volume():
    """Fargate copies a directory the image declares as a VOLUME, with its permissions, into
    the bind mount at the same path; otherwise the mount is root's, mode 0755, and the non-root
    server could not write to it (Amazon ECS Developer Guide, "Use bind mounts with Amazon ECS")."""
    from environment_template.tracking_service import SCRATCH_PATH
    from mlflow_platform.paths import IMAGE_SOURCE

    dockerfile = (IMAGE_SOURCE / "Dockerfile").read_text()
    assert f'VOLUME ["{SCRATCH_PATH}"]' in dockerfile


CERTIFICATE = {
    "CertificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/"
    "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
    "TlsServerName": "mlflow.internal.example.com",
}


def _listener(environment: dict) -> dict:
    _, listener = one_of_type(environment, "AWS::ElasticLoadBalancingV2::Listener")
    return listener["Properties"]


@pytest.mark.parametrize("tls", [False, True])
def test_the_listener_is_https_only_with_a_certificate(environment, tls):
    evaluator = Evaluator(environment, parameters=CERTIFICATE if tls else {})
    props = evaluator.eval(_listener(environment))
    if tls:
        assert (props["Port"], props["Protocol"]) == (443, "HTTPS")
        assert props["Certificates"] == [{"CertificateArn": CERTIFICATE["CertificateArn"]}]
        # TLS 1.3 and 1.2 only (Elastic Load Balancing, "Security policies for your ALB").
        assert props["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    else:
        assert (props["Port"], props["Protocol"]) == (80, "HTTP")
        assert props["Certificates"] == props["SslPolicy"] == {"Ref": "AWS::NoValue"}
    # One listener either way: its ARN, in the contract, does not change.
    assert len(of_type(environment, "AWS::ElasticLoadBalancingV2::Listener")) == 1
    # The load balancer's group admits, and its callers' groups send to, that port only.
    port = props["Port"]
    [alb_group] = _load_balancer(environment)["SecurityGroups"]
    rules = _security_group_rules(environment, "Ingress", alb_group["Fn::GetAtt"][0])
    assert len(rules) == 2
    for rule in rules:
        assert evaluator.eval(rule["FromPort"]) == evaluator.eval(rule["ToPort"]) == port
    to_alb = [
        r["Properties"]
        for r in of_type(environment, "AWS::EC2::SecurityGroupEgress").values()
        if r["Properties"]["DestinationSecurityGroupId"] == alb_group
    ]
    assert len(to_alb) == 2
    assert {evaluator.eval(r["FromPort"]) for r in to_alb} == {port}


@pytest.mark.parametrize("tls", [False, True])
def test_the_certificates_name_resolves_to_the_load_balancer_inside_the_vpc(environment, tls):
    evaluator = Evaluator(environment, parameters=CERTIFICATE if tls else {})
    zones = {
        n: r for n, r in environment["Resources"].items() if r["Type"].startswith("AWS::Route53::")
    }
    assert {r["Type"] for r in zones.values()} == {
        "AWS::Route53::HostedZone",
        "AWS::Route53::RecordSet",
    }
    for resource in zones.values():
        assert evaluator.condition(resource["Condition"]) is tls
    [zone] = [r for r in zones.values() if r["Type"] == "AWS::Route53::HostedZone"]
    [record] = [r for r in zones.values() if r["Type"] == "AWS::Route53::RecordSet"]
    vpc = next(iter(of_type(environment, "AWS::EC2::VPC")))
    assert zone["Properties"]["VPCs"][0]["VPCId"] == {"Ref": vpc}  # private to the MLflow VPC
    if tls:
        assert evaluator.eval(zone["Properties"]["Name"]) == CERTIFICATE["TlsServerName"]
        assert evaluator.eval(record["Properties"]["Name"]) == CERTIFICATE["TlsServerName"]
    alb = next(iter(of_type(environment, "AWS::ElasticLoadBalancingV2::LoadBalancer")))
    assert record["Properties"]["AliasTarget"]["DNSName"] == {"Fn::GetAtt": [alb, "DNSName"]}


@pytest.mark.parametrize(
    ("tls", "published"), [(False, "none"), (True, "mlflow.internal.example.com")]
)
def test_the_environment_publishes_the_name_team_apis_verify(environment, tls, published):
    evaluator = Evaluator(environment, parameters=CERTIFICATE if tls else {})
    value = environment["Outputs"][contract.TLS_SERVER_NAME.name]["Value"]
    assert evaluator.eval(value) == published
