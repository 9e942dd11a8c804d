"""The cloud path of presigned artifact URLs, and the client settings each team stack publishes.

The tracking server only signs; artifact bytes go between the client (a notebook or job in the
team's VPC, or a browser on the MLflow UI) and the bucket. These tests follow that path through
the synthesized templates: what a client is told to set, how the team VPC reaches S3, which
policies a presigned request meets, what the bucket lets a browser do, and where the server's
URLs point.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jinja2
import mlflow
import pytest
import yaml
from cfn_eval import Evaluator
from helpers import as_list, of_type, one_of_type, policy_statements, task_container

from mlflow_platform import contract
from mlflow_platform.building import render
from mlflow_platform.building.proton_schema import input_name
from mlflow_platform.client_settings import client_environment

REGION = "eu-west-1"
API_ID = "a1b2c3d4e5"
TEAM_API = f"https://{API_ID}.execute-api.{REGION}.amazonaws.com"
SERVICE = "mlflow-sagemaker-api"


def _environment_value(environment: dict, value: contract.ContractValue, auth_mode: str) -> str:
    """What the environment publishes for `value` with this AuthMode (output and parameter)."""
    evaluator = Evaluator(environment, parameters={"AuthMode": auth_mode}, region=REGION)
    result = evaluator.eval(environment["Outputs"][value.name]["Value"])
    assert isinstance(result, str)
    return result


def _replace(node: object, old: object, new: object) -> object:
    if node == old:
        return new
    if isinstance(node, dict):
        return {k: _replace(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace(v, old, new) for v in node]
    return node


def _client_environment(service: dict, environment: dict, auth_mode: str) -> dict[str, str]:
    """The ClientEnvironment output's value once deployed: the output is the parameter's Value
    (Fn::GetAtt), whose API id and contract read are resolved here as CloudFormation would."""
    output = service["Outputs"]["ClientEnvironment"]["Value"]
    assert output == {"Fn::GetAtt": ["ClientEnvironmentParameter", "Value"]}
    value = service["Resources"]["ClientEnvironmentParameter"]["Properties"]["Value"]
    api = next(iter(of_type(service, "AWS::ApiGatewayV2::Api")))
    value = _replace(value, {"Ref": api}, API_ID)
    value = _replace(
        value,
        {"Fn::Sub": contract.read_text(contract.CLIENT_SETTINGS)},
        _environment_value(environment, contract.CLIENT_SETTINGS, auth_mode),
    )
    text = Evaluator(service, region=REGION).eval(value)
    assert isinstance(text, str)
    parsed = json.loads(text)
    assert isinstance(parsed, dict)
    return parsed


# --- What the team stack publishes ---------------------------------------------------------


@pytest.mark.parametrize("auth_mode", ["basic", "iam"])
def test_the_team_stack_publishes_client_environment_for_its_api(service, environment, auth_mode):
    assert _client_environment(service, environment, auth_mode) == client_environment(
        tracking_uri=TEAM_API, auth_mode=auth_mode
    )
    # The team's tracking URI is the same value in both of its outputs.
    tracking_uri = Evaluator(service, region=REGION).eval(
        _replace(
            service["Outputs"]["TrackingUri"]["Value"],
            {"Ref": next(iter(of_type(service, "AWS::ApiGatewayV2::Api")))},
            API_ID,
        )
    )
    assert tracking_uri == TEAM_API


def test_the_client_environment_parameter_sits_beside_the_tracking_uri(service):
    evaluator = Evaluator(service, parameters={"EnvironmentName": "prod", "TeamName": "fraud"})
    names = {
        logical: evaluator.eval(p["Properties"]["Name"])
        for logical, p in of_type(service, "AWS::SSM::Parameter").items()
    }
    assert names == {
        "TrackingUriParameter": "/mlflow-platform/prod/teams/fraud/tracking-uri",
        "ClientEnvironmentParameter": "/mlflow-platform/prod/teams/fraud/client-environment",
    }
    assert service["Resources"]["ClientEnvironmentParameter"]["Properties"]["Type"] == "String"
    assert service["Outputs"]["ClientEnvironmentParameterName"]["Value"] == {
        "Ref": "ClientEnvironmentParameter"
    }
    # The team role reads both (and the environment's auth mode), nothing else in SSM.
    [read] = [s for s in policy_statements(service) if s.get("Sid") == "ReadTrackingSettings"]
    arns = {evaluator.eval(arn) for arn in as_list(read["Resource"])}
    root = "arn:aws:ssm:eu-west-1:123456789012:parameter/mlflow-platform/prod"
    assert arns == {
        f"{root}/teams/fraud/tracking-uri",
        f"{root}/teams/fraud/client-environment",
        f"{root}/auth-mode",
    }


def test_the_environment_publishes_the_settings_of_its_auth_mode(environment):
    for auth_mode in ("basic", "iam"):
        members = _environment_value(environment, contract.CLIENT_SETTINGS, auth_mode)
        assert members == contract.client_settings_members(auth_mode)
        expected = client_environment(tracking_uri="", auth_mode=auth_mode)
        del expected[contract.TRACKING_URI]
        assert json.loads("{" + members + "}") == expected
    evaluator = Evaluator(environment, parameters={"EnvironmentName": "e"})
    [parameter] = [
        p
        for p in of_type(environment, "AWS::SSM::Parameter").values()
        if evaluator.eval(p["Properties"]["Name"]) == "/mlflow-platform/e/client-settings"
    ]
    assert parameter["Properties"]["Value"] == environment["Outputs"]["ClientSettings"]["Value"]
    # Standard-tier String parameters hold up to 4 KB (AWS Systems Manager User Guide,
    # "Managing parameter tiers").
    assert len(contract.client_settings_members("iam")) + len(TEAM_API) + 32 < 4096


@pytest.mark.parametrize("auth_mode", ["basic", "iam"])
def test_proton_and_service_catalog_publish_the_same_names_and_value(
    rendered, environment, auth_mode
):
    """Proton's service instance outputs and the provisioned product's outputs come from the
    same template's Outputs; only the contract read differs, bound to environment.outputs."""
    item = rendered[SERVICE]
    catalog = yaml.safe_load(item.service_catalog)
    kind = item.definition.kind
    text = item.bundle.files[f"{render.INFRASTRUCTURE_DIR[kind]}/{render.TEMPLATE_FILE}"]
    inputs = {
        input_name(name): spec.get("Default", "") for name, spec in catalog["Parameters"].items()
    }
    outputs = {value.name: value.example for value in contract.ENVIRONMENT_OUTPUTS}
    outputs[contract.CLIENT_SETTINGS.name] = _environment_value(
        environment, contract.CLIENT_SETTINGS, auth_mode
    )
    proton = yaml.safe_load(
        jinja2.Environment(undefined=jinja2.StrictUndefined)
        .from_string(text)
        .render(
            environment={"outputs": outputs},
            service={"name": "mlflow-api"},
            service_instance={"name": "fraud", "inputs": inputs},
        )
    )
    names = {"ClientEnvironment", "ClientEnvironmentParameterName", "TrackingUri"}
    assert names <= set(catalog["Outputs"]) and set(proton["Outputs"]) == set(catalog["Outputs"])
    for name in names:
        assert proton["Outputs"][name] == catalog["Outputs"][name]
    # In Proton the contract value is rendered into the template: the same JSON results.
    value = proton["Resources"]["ClientEnvironmentParameter"]["Properties"]["Value"]
    api = next(iter(of_type(proton, "AWS::ApiGatewayV2::Api")))
    text = Evaluator(proton, region=REGION).eval(_replace(value, {"Ref": api}, API_ID))
    assert isinstance(text, str)
    assert json.loads(text) == client_environment(tracking_uri=TEAM_API, auth_mode=auth_mode)


# --- The team VPC's way to S3 --------------------------------------------------------------


def test_notebooks_and_jobs_reach_s3_through_the_team_vpcs_gateway_endpoint(service):
    """A gateway endpoint serves the subnets whose route tables it is added to (Amazon VPC
    User Guide, "Gateway endpoints for Amazon S3"); without a policy it has the default
    endpoint policy, full access (AWS PrivateLink Guide, "Control access to VPC endpoints using
    endpoint policies"), so the platform bucket's objects are allowed."""
    _, endpoint = one_of_type(service, "AWS::EC2::VPCEndpoint")
    properties = endpoint["Properties"]
    assert properties["VpcEndpointType"] == "Gateway"
    assert Evaluator(service, region=REGION).eval(properties["ServiceName"]) == (
        f"com.amazonaws.{REGION}.s3"
    )
    assert "PolicyDocument" not in properties
    # Notebooks, Studio and jobs run in the subnets of the PrivateSubnetIds output.
    subnets = service["Outputs"]["PrivateSubnetIds"]["Value"]["Fn::Join"][1]
    tables = {
        a["Properties"]["SubnetId"]["Ref"]: a["Properties"]["RouteTableId"]
        for a in of_type(service, "AWS::EC2::SubnetRouteTableAssociation").values()
    }
    assert subnets and all(tables[s["Ref"]] in properties["RouteTableIds"] for s in subnets)


# --- Policies a presigned request meets ----------------------------------------------------

# Condition keys that tie a request to a network path: any of them on the artifact bucket or
# the server's role would refuse a presigned URL used from a team VPC's endpoint or a browser.
NETWORK_KEYS = re.compile(
    r"^aws:(SourceVpce|SourceVpc|SourceIp|VpcSourceIp|SourceVpcArn|ViaAWSService)$", re.I
)


def _artifact_bucket(environment: dict) -> str:
    [name] = [
        logical
        for logical, bucket in of_type(environment, "AWS::S3::Bucket").items()
        if "CorsConfiguration" in bucket["Properties"]
    ]
    return name


def _condition_keys(statement: dict) -> set[str]:
    return {key for test in statement.get("Condition", {}).values() for key in test}


def test_nothing_ties_a_presigned_request_to_the_platform_network(environment, service):
    """A presigned URL carries the task role's signature and is used from a team VPC (through
    its own gateway endpoint) or a browser. The only deny on the bucket is the one for plain
    HTTP (presigned URLs are https); no bucket or endpoint policy and no statement of the task
    role names the VPC, an endpoint or an address (IAM User Guide, "AWS global condition
    context keys")."""
    bucket = _artifact_bucket(environment)
    [policy] = [
        p
        for p in of_type(environment, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        assert not any(NETWORK_KEYS.match(k) for k in _condition_keys(statement)), statement
        if statement["Effect"] == "Deny":
            assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    for template in (environment, service):
        for endpoint in of_type(template, "AWS::EC2::VPCEndpoint").values():
            assert "PolicyDocument" not in endpoint["Properties"]
    _, task = one_of_type(environment, "AWS::ECS::TaskDefinition")
    role = task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
    assert "PermissionsBoundary" not in environment["Resources"][role]["Properties"]
    for policy in of_type(environment, "AWS::IAM::Policy").values():
        if {"Ref": role} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            assert not any(NETWORK_KEYS.match(k) for k in _condition_keys(statement))


# --- What a browser on the MLflow UI may do ------------------------------------------------

UI_BUNDLE = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"


def _ui_code() -> str:
    return "\n".join(path.read_text(errors="replace") for path in UI_BUNDLE.glob("*.js"))


def test_the_mlflow_ui_moves_artifacts_the_way_the_cors_rule_allows():
    """What MLflow 3.18's UI bundle does with presigned URLs, which the rule below follows."""
    assert mlflow.__version__.startswith("3.18.")
    code = _ui_code()
    # Uploads: a presigned PUT (the signed Content-Type as a header), or a one-part multipart
    # upload whose ETag it reads back.
    assert 'fetch(e,{method:"PUT",headers:t,body:n})' in code
    assert 'headers.get("ETag")' in code and "createPresignedUploadUrl" in code
    assert "Configure storage CORS to expose the ETag response header" in code
    # Downloads: GETs; the PDF viewer asks for ranges and reads Content-Range and
    # Accept-Ranges.
    assert 'append("Range",' in code and 'getResponseHeader("Content-Range")' in code
    assert 'get("Accept-Ranges")' in code
    # No HEAD anywhere; its DELETEs are calls of the server's own API (relative URLs).
    assert 'method:"HEAD"' not in code


def test_the_bucket_lets_the_team_apis_pages_use_presigned_urls_and_nothing_more(
    environment, service
):
    """Amazon S3 User Guide, "Elements of a CORS configuration": an AllowedOrigin may hold
    one `*`; AllowedHeaders are matched against a preflight's Access-Control-Request-Headers;
    ExposeHeaders are what the page's script may read."""
    rule, origins = _cors_rule(environment)
    origin, *others = origins
    assert origin == f"https://*.execute-api.{REGION}.amazonaws.com"
    assert all(o.count("*") <= 1 for o in origins)
    # Beside the team APIs' pages, only `invoke ui`'s (the next test).
    assert {urlsplit(o).hostname for o in others} == {"127.0.0.1", "localhost", "::1"}
    # The team API's own URL is such an origin; another Region's, or plain HTTP, is not.
    pattern = re.compile(re.escape(origin).replace(r"\*", r"[a-z0-9]+"))
    tracking_uri = Evaluator(service, region=REGION).eval(
        _replace(
            service["Outputs"]["TrackingUri"]["Value"],
            {"Ref": next(iter(of_type(service, "AWS::ApiGatewayV2::Api")))},
            API_ID,
        )
    )
    assert pattern.fullmatch(tracking_uri)
    assert not pattern.fullmatch(f"https://{API_ID}.execute-api.us-east-1.amazonaws.com")
    assert not pattern.fullmatch(f"http://{API_ID}.execute-api.{REGION}.amazonaws.com")
    assert sorted(rule["AllowedMethods"]) == ["GET", "PUT"]
    assert sorted(rule["AllowedHeaders"]) == ["Content-Type", "Range"]
    assert sorted(rule["ExposedHeaders"]) == ["Accept-Ranges", "Content-Range", "ETag"]
    assert set(rule) == {
        "AllowedOrigins",
        "AllowedMethods",
        "AllowedHeaders",
        "ExposedHeaders",
        "MaxAge",
    }


def _cors_rule(environment: dict) -> tuple[dict, list[str]]:
    """The artifact bucket's one CORS rule, and its AllowedOrigins as deployed in REGION."""
    bucket = environment["Resources"][_artifact_bucket(environment)]
    [rule] = bucket["Properties"]["CorsConfiguration"]["CorsRules"]
    evaluator = Evaluator(environment, region=REGION)
    return rule, [evaluator.eval(o) for o in rule["AllowedOrigins"]]


def _s3_admits(allowed: str, origin: str) -> bool:
    """Whether S3 matches a request's Origin to an AllowedOrigin (Amazon S3 User Guide,
    "Elements of a CORS configuration" and "How does Amazon S3 evaluate the CORS
    configuration on a bucket?"): `*` admits every origin; else the string itself, where its one
    `*` stands for any run of characters."""
    if allowed == "*":
        return True
    head, star, tail = allowed.partition("*")
    if not star:
        return origin == allowed
    return (
        len(origin) >= len(head) + len(tail) and origin.startswith(head) and origin.endswith(tail)
    )


def test_the_bucket_lets_invoke_uis_pages_use_presigned_urls_too(environment):
    """`invoke ui` serves an iam team's MLflow UI on loopback. The UI downloads by navigating to
    a presigned URL (no CORS), but previews and uploads fetch() it, which S3 answers for a page
    only if the rule admits its origin: every origin the proxy serves pages from (its
    `page_origins`, on either loopback address, any port, port 80 without one) is admitted, for
    the same methods and headers as a team API's; origins that merely begin like a loopback
    name, HTTPS, another loopback address and other sites are not. The local platform's S3
    (moto's server) answers CORS for every origin, so the deployed rule is checked here, as S3
    matches it (environment_template/artifacts.py says why loopback origins rather than a
    proxy that fetches S3 URLs itself)."""
    from botocore.credentials import ReadOnlyCredentials

    from mlflow_platform.signing_proxy import SigningProxy, local_names, page_origins, target

    rule, origins = _cors_rule(environment)
    credentials = ReadOnlyCredentials("AKIAEXAMPLE000000001", "secret", None)
    served: set[str] = set()
    for bind in ("127.0.0.1", "::1"):
        proxy = SigningProxy(to=target(TEAM_API), bind=bind, credentials=lambda: credentials)
        try:
            served |= page_origins(proxy.names)
            assert f"{proxy.url}" in page_origins(proxy.names)  # the address it prints
        finally:
            proxy.close()
        served |= page_origins(local_names(bind, 8765)) | page_origins(local_names(bind, 80))
    assert {"http://127.0.0.1:8765", "http://localhost", "http://[::1]:8765"} <= served
    for origin in sorted(served):
        assert any(_s3_admits(allowed, origin) for allowed in origins), origin
    for origin in (
        "http://127.0.0.1.attacker.example", "http://127.0.0.1.attacker.example:8765",
        "http://localhost.attacker.example:8765", "http://attacker.example",
        "https://127.0.0.1:8765", "http://127.0.0.2:8765", "http://10.0.0.5:8765", "null",
        f"https://{API_ID}.execute-api.us-east-1.amazonaws.com",
    ):  # fmt: skip
        assert not any(_s3_admits(allowed, origin) for allowed in origins), origin
    # The matcher is S3's: the team API's page, and the wildcard's documented example.
    assert any(_s3_admits(allowed, TEAM_API) for allowed in origins)
    assert _s3_admits("http://*.example.com", "http://www.example.com")
    assert not _s3_admits("http://*.example.com", "http://www.example.org")
    # One rule: the loopback pages may GET and PUT with Range and Content-Type, nothing more.
    assert sorted(rule["AllowedMethods"]) == ["GET", "PUT"]
    assert sorted(rule["AllowedHeaders"]) == ["Content-Type", "Range"]


# --- Where the server's URLs point ---------------------------------------------------------


def _task_environment(environment: dict, region: str) -> dict[str, str]:
    container = task_container(environment)
    evaluator = Evaluator(environment, region=region)
    return {e["Name"]: str(evaluator.eval(e["Value"])) for e in container["Environment"]}


def _presign(monkeypatch, settings: dict[str, str], bucket: str) -> list[str]:
    """URLs the way MLflow 3.18's S3ArtifactRepository makes them: its own client
    (`_get_s3_client`, from these environment variables), a presigned PUT, a part of a
    multipart upload and a GET. Offline: presigning signs locally."""
    from mlflow.store.artifact import s3_artifact_repo

    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith(("MLFLOW_S3_", "MLFLOW_BOTO_", "AWS_ENDPOINT_URL")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    s3_artifact_repo._cached_get_s3_client.cache_clear()
    repo = s3_artifact_repo.S3ArtifactRepository(f"s3://{bucket}/artifacts/1/run")
    client = repo._get_s3_client()
    key = "artifacts/1/run/model.pkl"
    urls = [
        repo.create_presigned_upload_url("model.pkl").presigned_url,
        client.generate_presigned_url(
            "upload_part",
            Params={"Bucket": bucket, "Key": key, "PartNumber": 1, "UploadId": "u"},
        ),
        client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}),
    ]
    s3_artifact_repo._cached_get_s3_client.cache_clear()
    return urls


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "ap-southeast-2"])
def test_the_server_presigns_for_its_buckets_regional_endpoint(environment, monkeypatch, region):
    """botocore signs with its configured region and, without an endpoint, names the legacy
    global host; the task states its Region and S3's regional endpoint (Amazon S3 User Guide,
    "Virtual hosting of buckets"; mlflow/mlflow#11828)."""
    settings = _task_environment(environment, region)
    assert settings["AWS_REGION"] == settings["AWS_DEFAULT_REGION"] == region
    assert settings["MLFLOW_S3_ENDPOINT_URL"] == f"https://s3.{region}.amazonaws.com"
    assert settings["MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE"] == "virtual"
    names = ("AWS_REGION", "AWS_DEFAULT_REGION", "MLFLOW_S3_ENDPOINT_URL")
    names += ("MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE",)
    bucket = "mlflow-artifactsbucket-0123456789ab"
    for url in _presign(monkeypatch, {n: settings[n] for n in names}, bucket):
        parts = urlsplit(url)
        assert parts.scheme == "https"
        assert parts.netloc == f"{bucket}.s3.{region}.amazonaws.com"
        [credential] = parse_qs(parts.query)["X-Amz-Credential"]
        assert credential.split("/")[2:] == [region, "s3", "aws4_request"]
    # What the settings prevent: AWS_REGION alone leaves botocore without a region, so it signs
    # for us-east-1 and names the global host.
    if region != "us-east-1":
        [url, *_] = _presign(monkeypatch, {"AWS_REGION": region}, bucket)
        parts = urlsplit(url)
        assert parts.netloc == f"{bucket}.s3.amazonaws.com"
        assert parse_qs(parts.query)["X-Amz-Credential"][0].split("/")[2] == "us-east-1"


def test_the_task_states_its_region_in_every_partition(environment):
    container = task_container(environment)
    values = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert values["AWS_REGION"] == values["AWS_DEFAULT_REGION"] == {"Ref": "AWS::Region"}
    # The suffix is the partition's (amazonaws.com.cn in China), not a literal.
    rendered = json.dumps(values["MLFLOW_S3_ENDPOINT_URL"])
    assert "AWS::URLSuffix" in rendered and "AWS::Region" in rendered
