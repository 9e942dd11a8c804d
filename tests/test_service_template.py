"""mlflow-sagemaker-api: the team's VPC, HTTP API, role, and what it takes from its environment."""

from __future__ import annotations

import ipaddress
import json
import re

import pytest
from cfn_eval import Evaluator
from helpers import as_list, of_type, one_of_type, policy_statements

from mlflow_platform import contract
from mlflow_platform.building.synth import render_json


def test_every_input_has_a_description_a_default_and_a_constraint(service):
    for name, spec in service["Parameters"].items():
        assert spec.get("Description"), name
        assert "Default" in spec, name
        assert {"AllowedValues", "AllowedPattern", "MinValue"} & set(spec), name
    assert Evaluator(service).failed_rules() == []


@pytest.mark.parametrize(
    ("team", "accepted"),
    [("data-science", True), ("ml2", True), ("A-team", False), ("x", False), ("1team", False)],
)
def test_team_name_is_validated(service, team, accepted):
    pattern = service["Parameters"]["TeamName"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, team)) is accepted


def test_sagemaker_vpc_is_laid_out_from_its_own_cidr_input(service):
    evaluator = Evaluator(service, parameters={"VpcCidr": "10.42.0.0/20"})
    subnets = [
        ipaddress.ip_network(evaluator.eval(s["Properties"]["CidrBlock"]))
        for s in of_type(service, "AWS::EC2::Subnet").values()
    ]
    assert len(subnets) == 6
    assert all(s.subnet_of(ipaddress.ip_network("10.42.0.0/20")) for s in subnets)
    assert service["Parameters"]["VpcCidr"]["AllowedPattern"]
    _, endpoint = one_of_type(service, "AWS::EC2::VPCEndpoint")
    assert endpoint["Properties"]["VpcEndpointType"] == "Gateway"
    one_of_type(service, "AWS::EC2::FlowLog")


def test_workload_security_group_allows_only_https_out_and_itself(service):
    [(name, group)] = [
        (n, g) for n, g in of_type(service, "AWS::EC2::SecurityGroup").items() if "Workload" in n
    ]
    egress = group["Properties"]["SecurityGroupEgress"]
    assert egress == [
        {
            "CidrIp": "0.0.0.0/0",
            "Description": "HTTPS to AWS APIs",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]
    for rule in of_type(service, "AWS::EC2::SecurityGroupIngress").values():
        assert rule["Properties"]["SourceSecurityGroupId"] == {"Fn::GetAtt": [name, "GroupId"]}


def _ssm_reads(template: dict) -> set[str]:
    return set(contract.SSM_REFERENCE.findall(render_json(template)))


def test_service_reads_only_what_the_environment_publishes(service, environment):
    reads = _ssm_reads(service)
    assert reads == {
        contract.VPC_LINK_ID.ssm_key,
        contract.LISTENER_ARN.ssm_key,
        contract.ROUTE_AUTHORIZATION.ssm_key,
        contract.TEAM_USERS.ssm_key,
        contract.TRACKING_HOST.ssm_key,
        contract.CLIENT_SETTINGS.ssm_key,
    }
    published = {
        Evaluator(environment, parameters={"EnvironmentName": "e"}).eval(p["Properties"]["Name"])
        for p in of_type(environment, "AWS::SSM::Parameter").values()
    }
    for key in reads:
        assert f"{contract.SSM_ROOT}/e/{key}" in published
        assert contract.BY_SSM_KEY[key].name in environment["Outputs"]


def test_http_api_proxies_every_path_through_the_vpc_link(service):
    _, api = one_of_type(service, "AWS::ApiGatewayV2::Api")
    assert api["Properties"]["ProtocolType"] == "HTTP"
    _, integration = one_of_type(service, "AWS::ApiGatewayV2::Integration")
    props = integration["Properties"]
    assert props["IntegrationType"] == "HTTP_PROXY"
    assert props["ConnectionType"] == "VPC_LINK"
    assert props["ConnectionId"] == {"Fn::Sub": contract.read_text(contract.VPC_LINK_ID)}
    assert props["IntegrationUri"] == {"Fn::Sub": contract.read_text(contract.LISTENER_ARN)}
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in of_type(service, "AWS::ApiGatewayV2::Route").values()
    }
    assert set(routes) == {"ANY /{proxy+}", "ANY /"}
    integration_name = next(iter(of_type(service, "AWS::ApiGatewayV2::Integration")))
    for route in routes.values():
        assert integration_name in json.dumps(route["Target"])


@pytest.mark.parametrize(("mode", "authorization"), [("iam", "AWS_IAM"), ("basic", "NONE")])
def test_routes_authorize_as_the_environments_auth_mode_says(
    service, environment, mode, authorization
):
    published = Evaluator(environment, parameters={"AuthMode": mode}).eval(
        environment["Outputs"][contract.ROUTE_AUTHORIZATION.name]["Value"]
    )
    assert published == authorization
    for route in of_type(service, "AWS::ApiGatewayV2::Route").values():
        assert route["Properties"]["AuthorizationType"] == {
            "Fn::Sub": contract.read_text(contract.ROUTE_AUTHORIZATION)
        }


def test_default_stage_logs_access_and_throttles(service):
    _, stage = one_of_type(service, "AWS::ApiGatewayV2::Stage")
    props = stage["Properties"]
    assert props["StageName"] == "$default"
    assert props["AutoDeploy"] is True
    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}
    assert props["DefaultRouteSettings"]["ThrottlingBurstLimit"] == {"Ref": "ThrottlingBurstLimit"}
    name, group = one_of_type(service, "AWS::Logs::LogGroup")
    assert props["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": [name, "Arn"]}
    assert "$context.status" in props["AccessLogSettings"]["Format"]
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_team_role_is_for_sagemaker_and_can_invoke_only_its_own_api(service):
    _, role = one_of_type(service, "AWS::IAM::Role")
    principal = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    assert principal == {"Service": "sagemaker.amazonaws.com"}
    assert "ManagedPolicyArns" not in role["Properties"]
    statements = policy_statements(service)
    [invoke] = [s for s in statements if s.get("Sid") == "InvokeTrackingApi"]
    api_name = next(iter(of_type(service, "AWS::ApiGatewayV2::Api")))
    arn = Evaluator(service).eval(invoke["Resource"])
    assert arn == f"arn:aws:execute-api:eu-west-1:123456789012:{{'Ref': '{api_name}'}}/*"
    for statement in statements:
        for action in as_list(statement["Action"]):
            assert action != "*" and not action.startswith(("s3:", "iam:", "sts:")), statement


def test_tracking_uri_is_published_for_notebooks(service):
    evaluator = Evaluator(service, parameters={"EnvironmentName": "prod", "TeamName": "fraud"})
    parameter = service["Resources"]["TrackingUriParameter"]
    assert parameter["Type"] == "AWS::SSM::Parameter"
    assert (
        evaluator.eval(parameter["Properties"]["Name"])
        == "/mlflow-platform/prod/teams/fraud/tracking-uri"
    )
    assert parameter["Properties"]["Value"] == service["Outputs"]["TrackingUri"]["Value"]
    uri = Evaluator(service).eval(service["Outputs"]["TrackingUri"]["Value"])
    assert uri.startswith("https://") and ".execute-api.eu-west-1.amazonaws.com" in uri


def test_team_gets_mlflow_credentials_without_a_manual_step(service, environment):
    [(secret_name, secret)] = of_type(service, "AWS::SecretsManager::Secret").items()
    evaluator = Evaluator(service, parameters={"EnvironmentName": "prod", "TeamName": "fraud"})
    assert evaluator.eval(secret["Properties"]["Name"]) == "mlflow-platform/prod/teams/fraud"
    generated = secret["Properties"]["GenerateSecretString"]
    assert json.loads(evaluator.eval(generated["SecretStringTemplate"])) == {
        "username": "team/fraud"
    }
    [(_, user)] = [
        (n, r) for n, r in service["Resources"].items() if r["Type"] == "Custom::MlflowTeamUser"
    ]
    assert user["Properties"]["ServiceToken"] == {
        "Fn::Sub": contract.read_text(contract.TEAM_USERS)
    }
    assert user["Properties"]["SecretArn"] == {"Ref": secret_name}
    [read] = [s for s in policy_statements(service) if s.get("Sid") == "ReadTeamCredentials"]
    assert read["Resource"] == {"Ref": secret_name}
    # The environment's function may read exactly the secrets of this naming scheme.
    [function_read] = [
        s for s in policy_statements(environment) if s.get("Sid") == "ReadTeamSecrets"
    ]
    arn = Evaluator(environment, parameters={"EnvironmentName": "prod"}).eval(
        function_read["Resource"]
    )
    assert (
        arn == "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mlflow-platform/prod/teams/*"
    )


@pytest.mark.parametrize(("create", "expected"), [("false", False), ("true", True)])
def test_studio_domain_is_optional_vpc_only_and_uses_the_team_role(service, create, expected):
    evaluator = Evaluator(service, parameters={"CreateStudioDomain": create})
    assert service["Parameters"]["CreateStudioDomain"]["Default"] == "false"
    studio = {
        n: r for n, r in service["Resources"].items() if r["Type"].startswith("AWS::SageMaker::")
    }
    assert {r["Type"] for r in studio.values()} == {
        "AWS::SageMaker::Domain",
        "AWS::SageMaker::UserProfile",
    }
    for resource in studio.values():
        assert evaluator.condition(resource["Condition"]) is expected
    [domain] = [r for r in studio.values() if r["Type"] == "AWS::SageMaker::Domain"]
    props = domain["Properties"]
    assert props["AppNetworkAccessType"] == "VpcOnly"
    assert props["AuthMode"] == "IAM"
    assert {s["Ref"] for s in props["SubnetIds"]} == {
        n for n in of_type(service, "AWS::EC2::Subnet") if "Private" in n
    }
    role = next(iter(of_type(service, "AWS::IAM::Role")))
    assert props["DefaultUserSettings"]["ExecutionRole"] == {"Fn::GetAtt": [role, "Arn"]}
    output = evaluator.eval(service["Outputs"]["StudioDomainId"]["Value"])
    assert (output != "none") is expected


def test_the_team_user_function_sees_every_resource_of_a_team_stack(service):
    """The function confirms an event with DescribeStackResources, which "returns only the
    first 100 resources" (AWS CloudFormation API Reference, DescribeStackResources): the
    secret and role it looks for must be among them."""
    assert len(service["Resources"]) <= 100


def test_team_role_touches_network_interfaces_only_in_the_team_vpc(service):
    """ec2:Vpc is defined on every resource these actions authorize (network-interface; for
    CreateNetworkInterface also subnet and security-group): Service Authorization Reference,
    "Actions, resources, and condition keys for Amazon EC2"."""
    statements = policy_statements(service)
    [scoped] = [s for s in statements if s.get("Sid") == "SageMakerNetworkInterfacesInTheTeamVpc"]
    assert sorted(as_list(scoped["Action"])) == [
        "ec2:CreateNetworkInterface",
        "ec2:CreateNetworkInterfacePermission",
        "ec2:DeleteNetworkInterface",
        "ec2:DeleteNetworkInterfacePermission",
    ]
    vpc = next(iter(of_type(service, "AWS::EC2::VPC")))
    condition = Evaluator(service).eval(scoped["Condition"])
    assert condition == {
        "ArnEquals": {"ec2:Vpc": f"arn:aws:ec2:eu-west-1:123456789012:vpc/{{'Ref': '{vpc}'}}"}
    }
    # Every other EC2 action left on "*" is a Describe (no resource-level permissions).
    for statement in statements:
        if statement.get("Resource") == "*" and "Condition" not in statement:
            for action in as_list(statement["Action"]):
                assert action.startswith("ec2:Describe"), statement


def test_the_sagemaker_vpc_keeps_a_nat_gateway(service):
    """Notebooks reach the team API, an HTTP API, by its public regional endpoint; HTTP APIs
    have no private endpoint, and an execute-api interface endpoint with private DNS would cut
    the VPC off from public APIs (API Gateway Developer Guide, "Private REST APIs")."""
    assert service["Parameters"]["NatGateways"]["AllowedValues"] == ["1", "2"]
    assert all(
        e["Properties"]["VpcEndpointType"] == "Gateway"
        for e in of_type(service, "AWS::EC2::VPCEndpoint").values()
    )


@pytest.mark.parametrize(("name", "verified"), [("none", False), ("mlflow.example.com", True)])
def test_the_team_api_verifies_the_load_balancers_certificate_when_it_has_one(
    service, name, verified
):
    """TlsConfig makes a private integration speak HTTPS and check the certificate's name
    (AWS::ApiGatewayV2::Integration, TlsConfig.ServerNameToVerify)."""
    _, integration = one_of_type(service, "AWS::ApiGatewayV2::Integration")
    evaluator = Evaluator(service, parameters={"TlsServerName": name})
    config = evaluator.eval(integration["Properties"]["TlsConfig"])
    if verified:
        assert config == {"ServerNameToVerify": name}
    else:
        assert config == {"Ref": "AWS::NoValue"}
    spec = service["Parameters"]["TlsServerName"]
    assert spec["Default"] == "none"
    assert re.fullmatch(spec["AllowedPattern"], name)
    assert not re.fullmatch(spec["AllowedPattern"], "")


def test_proton_binds_the_tls_name_to_the_environments_output(rendered):
    from mlflow_platform.building import render

    files = rendered["mlflow-sagemaker-api"].bundle.files
    import yaml

    document = yaml.safe_load(files[f"instance_infrastructure/{render.TEMPLATE_FILE}"])
    assert document["Parameters"]["TlsServerName"]["Default"] == (
        f"{{{{ environment.outputs.{contract.TLS_SERVER_NAME.name} }}}}"
    )
    assert "tls_server_name" not in files["schema/schema.yaml"]
