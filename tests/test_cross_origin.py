"""Which requests the tracking server serves, by their Origin and their team API's headers.

Against `invoke local` in basic mode (the real server, PostgreSQL). A browser sends Origin on
every cross-origin request and on same-origin requests other than GET and HEAD (Fetch
standard, "Origin header"); MLflow 3.18 answers any loopback Origin with credentialed CORS and
exempts it from its cross-origin block, so a page on any local port could use a signed-in
browser's Basic credentials. The platform serves only the team API's own origin (https://
and the domain the team API states in DOMAIN_HEADER), the server's own when nothing is in
front of it, and the origins MLflow's MLFLOW_SERVER_CORS_ALLOWED_ORIGINS lists
(test_iam_mode.py sets one).
"""

from __future__ import annotations

import pytest
import requests

from mlflow_platform.local.platform import LOAD_BALANCER_DNS_NAME

API_ORIGIN = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"
DOMAIN_HEADER = "X-Mlflow-Platform-Domain"
ROUTE_HEADER = "X-Mlflow-Platform-Route-Authorization"
SEARCH = "/api/2.0/mlflow/experiments/search"


def _call(details, method: str, path: str = SEARCH, *, headers: dict, auth: bool = True,
          **kwargs) -> requests.Response:  # fmt: skip
    return requests.request(
        method, details["tracking_uri"] + path, headers=headers, timeout=30,
        auth=(details["username"], details["password"]) if auth else None, **kwargs,
    )  # fmt: skip


def _through_team_api(origin: str | None) -> dict[str, str]:
    """What a basic-mode team API sends the load balancer for a browser at `origin`."""
    headers = {
        "Host": LOAD_BALANCER_DNS_NAME,
        DOMAIN_HEADER: API_ORIGIN.removeprefix("https://"),
        ROUTE_HEADER: "NONE",
    }
    return headers | ({"Origin": origin} if origin else {})


@pytest.mark.parametrize(
    "origin",
    ["http://localhost:3000", "http://127.0.0.1:8080", "http://[::1]:5173", "http://localhost",
     "https://attacker.example", "null"],
)  # fmt: skip
def test_a_page_of_another_origin_cannot_read_with_the_browsers_credentials(platform, origin):
    """The attack: a page on a local port fetches the API with the browser's cached Basic
    credentials (credentials: 'include'), then its preflighted POST."""
    _, details = platform
    read = _call(details, "GET", headers={"Origin": origin}, params={"max_results": 1})
    assert read.status_code == 403, (read.status_code, read.headers)
    assert "access-control-allow-origin" not in read.headers
    assert "access-control-allow-credentials" not in read.headers
    assert f"Origin {origin!r}" in read.text
    preflight = _call(details, "OPTIONS", auth=False, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})  # fmt: skip
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    write = _call(details, "POST", "/api/2.0/mlflow/experiments/create",
                  headers={"Origin": origin}, json={"name": f"cors-{origin}"})  # fmt: skip
    assert write.status_code == 403
    # Behind the team API as well: the browser's page is not the team API's.
    behind = _call(details, "GET", headers=_through_team_api(origin), params={"max_results": 1})
    assert behind.status_code == 403


def test_the_team_apis_own_pages_are_served(platform):
    """The UI through its team API: same-origin POSTs carry the team API's origin."""
    _, details = platform
    for origin in (API_ORIGIN, None):
        response = _call(details, "POST", headers=_through_team_api(origin),
                         json={"max_results": 1})  # fmt: skip
        assert response.status_code == 200, (origin, response.text)


def test_the_servers_own_pages_are_served_when_nothing_is_in_front(platform):
    """`invoke local` without a team API: the browser's Origin is the server's own address."""
    _, details = platform
    response = _call(details, "POST", headers={"Origin": details["tracking_uri"]},
                     json={"max_results": 1})  # fmt: skip
    assert response.status_code == 200, response.text
    port = details["tracking_uri"].rsplit(":", 1)[-1]
    other_port = _call(details, "POST", headers={"Origin": f"http://127.0.0.1:{int(port) + 1}"},
                       json={"max_results": 1})  # fmt: skip
    assert other_port.status_code == 403


@pytest.mark.parametrize(
    "name",
    ["X_Mlflow_Platform_Caller", "x_mlflow_platform_caller", "X-Mlflow_Platform-Caller",
     "X_MLFLOW_PLATFORM_CALLER"],
)  # fmt: skip
def test_an_underscore_alias_of_the_caller_header_is_refused(platform, name):
    """API Gateway overwrites `X-Mlflow-Platform-Caller` only; WSGI reads both spellings as one
    (HTTP_X_MLFLOW_PLATFORM_CALLER), so the alias is refused before WSGI sees it."""
    _, details = platform
    response = _call(details, "GET", headers={name: "arn:aws:iam::123456789012:role/x"},
                     params={"max_results": 1})  # fmt: skip
    assert response.status_code == 400, response.text
    # uvicorn hands header names on in lower case (ASGI HTTP connection scope).
    assert repr(name.lower()) in response.text and "X-Mlflow-Platform-Caller" in response.text


def test_case_variants_of_the_caller_header_are_the_header(platform):
    """HTTP header names are case-insensitive (RFC 9110, 5.1): not an alias. In basic mode the
    header itself says the team API authorizes with IAM, which basic mode does not."""
    _, details = platform
    response = _call(details, "GET", headers={"x-mlflow-platform-caller": ""},
                     params={"max_results": 1})  # fmt: skip
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({ROUTE_HEADER: "AWS_IAM"}, f"{ROUTE_HEADER} = 'AWS_IAM'"),
        ({"X-Mlflow-Platform-Caller": "arn:aws:sts::123456789012:assumed-role/R/s"},
         "X-Mlflow-Platform-Caller"),
    ],
)  # fmt: skip
def test_basic_mode_refuses_a_team_api_that_authorizes_with_iam(platform, headers, named):
    """A team API deployed while the environment was `iam` (AuthMode changed since): its
    routes check SigV4 and name the caller; basic mode serves neither."""
    _, details = platform
    response = _call(details, "GET", headers=headers, params={"max_results": 1})
    assert response.status_code == 403, response.text
    assert named in response.text and "update the team stack" in response.text
