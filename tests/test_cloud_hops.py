"""Each hop a request takes in the cloud, with the Host header that hop sends.

The tracking server checks the Host header (MLflow's DNS-rebinding guard: it compares the raw
Host, exactly or by `fnmatch`, case-sensitively, with `--allowed-hosts`;
mlflow/server/security_utils.py `is_allowed_host_header`). Two callers reach it:
- a team's HTTP API, through the VPC link to the load balancer's listener. The integration
  overwrites Host with the load balancer's DNS name, so neither the execute-api domain nor a
  custom domain reaches the server. Host is not among the headers HTTP APIs reserve from
  parameter mapping (API Gateway Developer Guide, "Transform API requests and responses for
  HTTP APIs", section "Reserved headers", https://docs.aws.amazon.com/apigateway/latest/
  developerguide/http-api-parameter-mapping.html#http-api-mapping-reserved-headers);
- the team-user function, which calls `http://<load balancer DNS name>`.
The local platform's server accepts the same Host headers as the cloud's, so these tests send
each request as its hop sends it; the team-user function runs unchanged, its URL naming the
load balancer, whose name resolves here to the local server as it resolves to the load balancer
in the VPC.
"""

from __future__ import annotations

import fnmatch
import socket
import urllib.parse

import pytest
import requests
from cfn_eval import Evaluator
from helpers import one_of_type, task_container

from mlflow_platform import contract
from mlflow_platform.building import render
from mlflow_platform.local.platform import LOAD_BALANCER_DNS_NAME
from tracking_server import settings

# Verbatim from the "Reserved headers" list of the page cited above.
RESERVED_HEADERS = (
    "access-control-*", "apigw-*", "Authorization", "Connection", "Content-Encoding",
    "Content-Length", "Content-Location", "Forwarded", "Keep-Alive", "Origin",
    "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailers", "Transfer-Encoding",
    "Upgrade", "x-amz-*", "x-amzn-*", "X-Forwarded-For", "X-Forwarded-Host",
    "X-Forwarded-Proto", "Via",
)  # fmt: skip
LOAD_BALANCER = "IngressLoadBalancerAE82CB09"
DNS_NAME = {"Fn::GetAtt": [LOAD_BALANCER, "DNSName"]}


def _container_environment(environment: dict) -> dict[str, object]:
    container = task_container(environment)
    return {e["Name"]: e["Value"] for e in container["Environment"]}


def test_team_apis_send_the_load_balancers_name_as_host(service, environment, rendered):
    _, integration = one_of_type(service, "AWS::ApiGatewayV2::Integration")
    mappings = integration["Properties"]["RequestParameters"]
    assert mappings["overwrite:header.Host"] == {
        "Fn::Sub": contract.read_text(contract.TRACKING_HOST)
    }
    for key in mappings:
        header = key.split("header.", 1)[1]
        reserved = [r for r in RESERVED_HEADERS if fnmatch.fnmatch(header.lower(), r.lower())]
        assert reserved == [], f"{header} is reserved from HTTP API parameter mapping"
    # What the environment publishes under that name is its load balancer's DNS name.
    assert environment["Outputs"][contract.TRACKING_HOST.name]["Value"] == DNS_NAME
    # Proton hands the same output to the service.
    bundle = rendered["mlflow-sagemaker-api"].bundle.files
    proton = bundle[f"instance_infrastructure/{render.TEMPLATE_FILE}"]
    assert f"{{{{ environment.outputs.{contract.TRACKING_HOST.name} }}}}" in proton


def test_the_server_accepts_exactly_the_hosts_its_callers_send(environment):
    allowed = Evaluator(environment, region="eu-west-1").eval(
        _container_environment(environment)[settings.ALLOWED_HOSTS]
    )
    assert str(allowed).split(",") == [
        f"<{LOAD_BALANCER}.DNSName>",
        "*.execute-api.eu-west-1.amazonaws.com",
    ]
    # The team-user function calls the load balancer by the name the server accepts.
    _, function = one_of_type(environment, "AWS::Lambda::Function")
    url = function["Properties"]["Environment"]["Variables"]["TRACKING_URL"]
    assert Evaluator(environment).eval(url) == f"http://<{LOAD_BALANCER}.DNSName>"


def test_with_a_certificate_the_function_calls_the_name_on_it_which_the_server_accepts(
    environment,
):
    tls = {
        "CertificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/"
        "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
        "TlsServerName": "mlflow.internal.example.com",
    }
    evaluator = Evaluator(environment, parameters=tls)
    allowed = evaluator.eval(_container_environment(environment)[settings.ALLOWED_HOSTS])
    assert str(allowed).split(",") == [
        f"<{LOAD_BALANCER}.DNSName>",
        "*.execute-api.eu-west-1.amazonaws.com",
        "mlflow.internal.example.com",
    ]
    _, function = one_of_type(environment, "AWS::Lambda::Function")
    url = function["Properties"]["Environment"]["Variables"]["TRACKING_URL"]
    assert evaluator.eval(url) == "https://mlflow.internal.example.com"


@pytest.fixture
def load_balancer(platform, monkeypatch):
    """The load balancer's name resolves to the local server, port 80 to the server's port."""
    _, details = platform
    port = urllib.parse.urlsplit(details["tracking_uri"]).port
    real = socket.getaddrinfo

    def resolve(host, service, *args, **kwargs):
        if host == LOAD_BALANCER_DNS_NAME:
            assert service in (80, "80", "http"), service
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, service, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return f"http://{LOAD_BALANCER_DNS_NAME}"


@pytest.mark.parametrize(
    ("host", "status"),
    [
        (LOAD_BALANCER_DNS_NAME, 200),  # a team API (Host overwritten) and the function
        ("a1b2c3d4e5.execute-api.us-east-1.amazonaws.com", 200),  # a team API before the mapping
        ("mlflow.example.com", 403),  # a custom domain, had the team API not overwritten Host
        ("evil.example", 403),
    ],
)
def test_each_hops_host_header_on_the_local_platform(platform, host, status):
    _, details = platform
    response = requests.get(
        f"{details['tracking_uri']}/api/2.0/mlflow/experiments/search",
        params={"max_results": 1},
        headers={"Host": host},
        auth=(details["username"], details["password"]),
        timeout=30,
    )
    assert response.status_code == status, response.text[:200]


def test_the_team_user_function_reaches_the_server_by_the_load_balancers_name(
    platform, load_balancer, monkeypatch
):
    """The function's deployed code and URL form, as in the cloud: before the load balancer's
    name was an allowed host, this answered FAILED with 403 "Invalid Host header"."""
    from function_harness import Stack, invoke

    _, details = platform
    admin = {"username": details["username"], "password": details["password"]}
    team = {"username": "team/hops", "password": "p" * 20}
    created = invoke(monkeypatch, tracking_url=load_balancer, admin=admin, team_secret=team,
                     request_type="Create", stack=Stack(), team="hops")  # fmt: skip
    assert created is not None
    assert (created["Status"], created["Reason"]) == ("SUCCESS", "created"), created
    seen = requests.get(
        f"{load_balancer}/api/2.0/mlflow/experiments/search",
        params={"max_results": 1},
        auth=(team["username"], team["password"]),
        timeout=30,
    )
    assert seen.status_code == 200
    deleted = invoke(monkeypatch, tracking_url=load_balancer, admin=admin, team_secret=None,
                     request_type="Delete", stack=Stack(user_status="DELETE_IN_PROGRESS"),
                     team="hops", physical_id="team/hops")  # fmt: skip
    assert deleted is not None and deleted["Status"] == "SUCCESS", deleted
