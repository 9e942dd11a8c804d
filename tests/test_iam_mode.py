"""`iam` mode: each team's role is its team's MLflow user, with MLflow's per-experiment
permissions, as in basic mode.

The local platform runs the server in iam mode; each request carries the caller header as the
team API's integration sets it (`$context.identity.userArn`, the SigV4-verified caller; API
Gateway Developer Guide, "HTTP API access logging variables" and "Transform API requests and
responses for HTTP APIs": an `overwrite:header` mapping replaces whatever the client sent).
Teams are registered by the team-user function's deployed code, as their stacks do.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import requests
from function_harness import Stack, invoke
from helpers import of_type, one_of_type, task_container

from mlflow_platform import client_settings
from mlflow_platform.local.platform import LocalPlatform
from tracking_server import settings

ACCOUNT = "123456789012"
ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/platform/MlflowAdmins"
TEAMS = {
    "a": (f"arn:aws:iam::{ACCOUNT}:role/team-a-TeamRole-AAA", f"stack/team-a/{'1' * 8}"),
    "b": (f"arn:aws:iam::{ACCOUNT}:role/team-b-TeamRole-BBB", f"stack/team-b/{'2' * 8}"),
}


# MLflow's own setting for origins allowed cross-origin (MLflow 3.18, `mlflow server
# --cors-allowed-origins`): the one way to serve a page of another origin.
CORS_ALLOWED_ORIGINS = "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"
ALLOWED_ORIGIN = "https://notebooks.example.com"
ROUTE_HEADER = "X-Mlflow-Platform-Route-Authorization"


def _session(role: str) -> str:
    """What `$context.identity.userArn` is for a SageMaker job running as `role`."""
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role.rsplit('/', 1)[-1]}/SageMaker"


@pytest.fixture(scope="module")
def iam(monkeypatch_module):
    state = Path(tempfile.mkdtemp(prefix="mlflow-iam-"))
    state.chmod(0o755)
    local = LocalPlatform(state, progress=lambda _: None)
    try:
        details = local.up(
            server_env={
                settings.AUTH_MODE: "iam",
                settings.ADMIN_PRINCIPALS: ADMIN_ROLE,
                CORS_ALLOWED_ORIGINS: ALLOWED_ORIGIN,
            }
        )
        admin = {"username": details["username"], "password": details["password"]}
        suffix = str(time.time_ns() % 10**6)
        for team, (role, stack) in TEAMS.items():
            stack_id = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:{stack}"
            response = invoke(
                monkeypatch_module, tracking_url=details["tracking_uri"], admin=admin,
                team_secret={"username": f"team/{team}{suffix}", "password": "s" * 24},
                request_type="Create", stack=Stack(stack_id=stack_id, roles=[role]),
                team=f"{team}{suffix}", principal=role,
            )  # fmt: skip
            assert response is not None and response["Status"] == "SUCCESS", response
        yield details
    finally:
        local.down()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


class As:
    """Requests as a caller through its team API: the caller header as API Gateway sets it."""

    def __init__(self, details: dict, caller: str | None, auth=None) -> None:
        self.url = details["tracking_uri"]
        self.headers = {settings.CALLER_HEADER: caller} if caller else {}
        self.auth = auth

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.url + path, headers=self.headers, auth=self.auth,
                                timeout=30, **kwargs)  # fmt: skip

    def post(self, path: str, body: dict) -> dict:
        response = self.call("POST", f"/api/2.0/mlflow/{path}", json=body)
        assert response.status_code == 200, response.text
        return response.json()


def _team(details, team: str) -> As:
    return As(details, _session(TEAMS[team][0]))


def test_a_team_cannot_reach_another_teams_runs_artifacts_or_models(iam):
    a, b = _team(iam, "a"), _team(iam, "b")
    experiment = a.post("experiments/create", {"name": f"a-{time.time_ns()}"})["experiment_id"]
    run = a.post("runs/create", {"experiment_id": experiment})["run"]["info"]["run_id"]
    a.post("runs/log-parameter", {"run_id": run, "key": "alpha", "value": "0.5"})
    a.post("runs/log-metric", {"run_id": run, "key": "loss", "value": 0.1, "timestamp": 1,
                               "step": 0})  # fmt: skip
    # Artifacts move between the client and S3 on URLs the server signs (presigned-only).
    folder = f"{experiment}/{run}/artifacts"
    artifact = f"/api/2.0/mlflow-artifacts/artifacts/{folder}/model.bin"
    data = os.urandom(2 * 1024 * 1024)
    _upload(a, folder, "model.bin", data)
    model = f"model-a-{time.time_ns()}"
    a.post("registered-models/create", {"name": model})

    # Team A reads its own.
    assert a.call("GET", "/api/2.0/mlflow/runs/get", params={"run_id": run}).status_code == 200
    assert _download(a, f"{folder}/model.bin") == data
    # Team B, signed by its own role through its own API, reaches none of it.
    for method, path, kwargs in [
        ("GET", "/api/2.0/mlflow/runs/get", {"params": {"run_id": run}}),
        ("GET", "/api/2.0/mlflow/experiments/get", {"params": {"experiment_id": experiment}}),
        ("POST", "/api/2.0/mlflow/runs/log-metric",
         {"json": {"run_id": run, "key": "loss", "value": 9.0, "timestamp": 2, "step": 1}}),
        ("POST", "/api/2.0/mlflow/runs/delete", {"json": {"run_id": run}}),
        ("GET", artifact, {}),
        ("PUT", artifact, {"data": b"overwritten"}),
        ("GET", f"/api/2.0/mlflow-artifacts/presigned/{folder}/model.bin", {}),
        ("POST", f"/api/2.0/mlflow-artifacts/mpu/create/{folder}",
         {"json": {"path": "model.bin", "num_parts": 1}}),
        ("GET", "/api/2.0/mlflow/registered-models/get", {"params": {"name": model}}),
        ("DELETE", "/api/2.0/mlflow/registered-models/delete", {"json": {"name": model}}),
    ]:  # fmt: skip
        response = b.call(method, path, **kwargs)
        assert response.status_code == 403, (method, path, response.status_code, response.text)
    searched = b.post("experiments/search", {"max_results": 1000})
    assert experiment not in {e["experiment_id"] for e in searched.get("experiments", [])}
    # Nothing of team A's changed.
    history = a.call("GET", "/api/2.0/mlflow/metrics/get-history",
                     params={"run_id": run, "metric_key": "loss"}).json()["metrics"]  # fmt: skip
    assert [m["value"] for m in history] == [0.1]
    assert _download(a, f"{folder}/model.bin") == data


def _upload(team: As, folder: str, name: str, data: bytes) -> None:
    """As MLflow's client uploads to a presigned-only server: a multipart upload of signed
    part URLs, the bytes straight to S3."""
    created = team.call("POST", f"/api/2.0/mlflow-artifacts/mpu/create/{folder}",
                        json={"path": name, "num_parts": 1})  # fmt: skip
    assert created.status_code == 200, created.text
    [credential] = created.json()["credentials"]
    sent = requests.put(credential["url"], data=data, headers=credential.get("headers") or {},
                        timeout=60)  # fmt: skip
    assert sent.status_code == 200, sent.text
    part = {"part_number": 1, "etag": sent.headers["ETag"], "url": credential["url"]}
    done = team.call("POST", f"/api/2.0/mlflow-artifacts/mpu/complete/{folder}",
                     json={"path": name, "upload_id": created.json()["upload_id"],
                           "parts": [part]})  # fmt: skip
    assert done.status_code == 200, done.text


def _download(team: As, path: str) -> bytes:
    signed = team.call("GET", f"/api/2.0/mlflow-artifacts/presigned/{path}")
    assert signed.status_code == 200, signed.text
    answer = signed.json()
    fetched = requests.get(answer["url"], headers=answer.get("headers") or {}, timeout=60)
    assert fetched.status_code == 200, fetched.text[:200]
    return fetched.content


def test_who_is_refused_and_who_is_the_admin(iam):
    outsider = As(iam, f"arn:aws:sts::{ACCOUNT}:assumed-role/SomeOtherRole/session")
    response = outsider.call("GET", "/api/2.0/mlflow/experiments/search",
                             params={"max_results": 1})  # fmt: skip
    assert response.status_code == 403 and "has no MLflow user" in response.text
    two = As(iam, f"{_session(TEAMS['b'][0])},{_session(ADMIN_ROLE)}")  # a header sent twice
    assert two.call("GET", "/api/2.0/mlflow/experiments/search").status_code == 403
    not_an_arn = As(iam, "team/a")
    assert (
        not_an_arn.call(
            "GET", "/api/2.0/mlflow/experiments/search", params={"max_results": 1}
        ).status_code
        == 403
    )
    # Without the header (not through a team API): no credential, 401; only the admin's
    # credential (the team-user function's) is served.
    assert (
        As(iam, None)
        .call("GET", "/api/2.0/mlflow/experiments/search", params={"max_results": 1})
        .status_code
        == 401
    )
    admin = As(iam, None, auth=(iam["username"], iam["password"]))
    assert (
        admin.call(
            "GET", "/api/2.0/mlflow/experiments/search", params={"max_results": 1}
        ).status_code
        == 200
    )
    # An admin principal, signed through a team API, acts as the admin.
    admin_role = As(iam, _session(ADMIN_ROLE))
    person = {"username": f"person{time.time_ns()}", "password": "p" * 20}
    created = admin_role.call("POST", "/api/2.0/mlflow/users/create", json=person)
    assert created.status_code == 200, created.text  # admin only
    # A team's role may not.
    other = {"username": f"x{time.time_ns()}", "password": "p" * 20}
    refused = _team(iam, "a").call("POST", "/api/2.0/mlflow/users/create", json=other)
    assert refused.status_code == 403
    # Health checks need nothing.
    assert requests.get(f"{iam['tracking_uri']}/health", timeout=30).status_code == 200


def test_a_team_password_without_the_header_is_refused(iam):
    """Teams have a password in their secret (both modes); in iam mode it opens nothing."""
    users = As(iam, None, auth=(iam["username"], iam["password"])).call(
        "GET", "/api/2.0/mlflow/users/list"
    )
    # The fixture's teams (the local platform's own team has another password).
    team_users = [
        u["username"]
        for u in users.json()["users"]
        if u["username"].startswith("team/") and u["username"] != "team/local"
    ]
    assert team_users
    response = As(iam, None, auth=(team_users[0], "s" * 24)).call(
        "GET", "/api/2.0/mlflow/experiments/search", params={"max_results": 1}
    )
    assert response.status_code == 403
    assert "only requests through a team API, or the admin" in response.text


def test_the_team_api_sets_the_caller_header_on_every_request(service, environment):
    _, integration = one_of_type(service, "AWS::ApiGatewayV2::Integration")
    mappings = integration["Properties"]["RequestParameters"]
    assert mappings[f"overwrite:header.{settings.CALLER_HEADER}"] == "$context.identity.userArn"
    # The routes' authorization type, from the same contract value as the routes themselves.
    _, route = next(iter(of_type(service, "AWS::ApiGatewayV2::Route").items()))
    assert (
        mappings[settings.ROUTE_AUTHORIZATION_MAPPING] == route["Properties"]["AuthorizationType"]
    )
    assert (
        mappings[f"overwrite:header.{ROUTE_HEADER}"]
        == mappings[settings.ROUTE_AUTHORIZATION_MAPPING]
    )
    assert mappings[f"overwrite:header.{settings.DOMAIN_HEADER}"] == "$context.domainName"
    container = task_container(environment)
    names = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert names[settings.ADMIN_PRINCIPALS] == {"Ref": "AdminPrincipals"}


TEAM_A_KEY = "AKIAEXAMPLETEAMA0001"
TEAM_B_KEY = "AKIAEXAMPLETEAMB0002"


@pytest.fixture(scope="module")
def gateway(iam):
    """Team API stand-in: checks SigV4 as API Gateway does, then maps Host and the caller."""
    from sigv4_gateway import Caller, Gateway, port_of

    from mlflow_platform.local.platform import LOAD_BALANCER_DNS_NAME

    callers = {
        TEAM_A_KEY: Caller("team-a-secret-key", _session(TEAMS["a"][0])),
        TEAM_B_KEY: Caller("team-b-secret-key", _session(TEAMS["b"][0])),
    }
    served = Gateway(
        target_port=port_of(iam["tracking_uri"]), host=LOAD_BALANCER_DNS_NAME, callers=callers
    )
    yield served
    served.close()


def _signed(key: str, secret: str):
    from requests_auth_aws_sigv4 import AWSSigV4

    return AWSSigV4(
        "execute-api", region="us-east-1", aws_access_key_id=key, aws_secret_access_key=secret
    )


def _sigv4_env(tmp_path) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_AWS_SIGV4": "true",
        "AWS_ACCESS_KEY_ID": TEAM_A_KEY,
        "AWS_SECRET_ACCESS_KEY": "team-a-secret-key",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }


def _plugin_env(tmp_path) -> dict[str, str]:
    """What a team sets in iam mode (client_settings): the platform client signs."""
    env = {k: v for k, v in _sigv4_env(tmp_path).items() if k != "MLFLOW_TRACKING_AWS_SIGV4"}
    return {**env, "MLFLOW_TRACKING_AUTH": client_settings.SIGV4_AUTH_PROVIDER}


@pytest.mark.parametrize("signing", ["mlflow-platform-client", "mlflow-builtin-sigv4"])
def test_the_example_runs_as_a_team_with_sigv4_through_its_team_api(
    iam, gateway, tmp_path, signing
):
    """With the platform's client, as documented; and with MLflow's own SigV4 setting, which
    could not upload a file body (mlflow/mlflow#15051) but now never has to: the server is
    presigned-only, so no artifact byte crosses the team API (it does not refresh credentials
    during a long job, which is why the documented way is the client)."""
    from test_examples import _check, _run_example

    env = _plugin_env(tmp_path) if signing == "mlflow-platform-client" else _sigv4_env(tmp_path)
    experiment, model = f"iam-example-{time.time_ns()}", f"iam-model-{time.time_ns()}"
    output = _run_example({"MLFLOW_TRACKING_URI": gateway.url, **env}, experiment, model)
    _check(iam, output, experiment, model)


def test_mlflows_client_signs_through_the_team_api_as_its_team(iam, gateway, tmp_path, monkeypatch):
    """Runs, params, metrics and registered models with MLflow's own client and SigV4."""
    from mlflow import MlflowClient

    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in _sigv4_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    client = MlflowClient(gateway.url)
    experiment = client.create_experiment(f"signed-{time.time_ns()}")
    run = client.create_run(experiment).info.run_id
    client.log_param(run, "alpha", "0.5")
    for step in range(5):
        client.log_metric(run, "loss", 1.0 / (step + 1), step=step)
    model = client.create_registered_model(f"signed-model-{time.time_ns()}").name
    assert client.get_run(run).data.params == {"alpha": "0.5"}
    assert [m.step for m in client.get_metric_history(run, "loss")] == list(range(5))
    assert set(gateway.forwarded) == {_session(TEAMS["a"][0])}
    # Team B, signed with its own credentials through the same kind of API, sees none of it.
    for path, params in [("runs/get", {"run_id": run}), ("registered-models/get", {"name": model})]:
        response = requests.get(
            f"{gateway.url}/api/2.0/mlflow/{path}",
            params=params,
            auth=_signed(TEAM_B_KEY, "team-b-secret-key"),
            timeout=30,
        )
        assert response.status_code == 403, (path, response.text)


def test_the_team_api_refuses_bad_signatures_and_overwrites_a_client_caller_header(gateway):
    search = f"{gateway.url}/api/2.0/mlflow/experiments/search?max_results=1"
    unsigned = requests.get(search, timeout=30)
    assert unsigned.status_code == 403 and "Missing Authentication Token" in unsigned.text
    wrong = requests.get(search, auth=_signed(TEAM_A_KEY, "not-the-secret"), timeout=30)
    assert wrong.status_code == 403 and "does not match" in wrong.text
    # Team B claims to be an admin principal in the header: the mapping overwrites it, and
    # creating a user (admin only) is refused.
    claimed = requests.post(
        f"{gateway.url}/api/2.0/mlflow/users/create",
        json={"username": f"mallory{time.time_ns()}", "password": "m" * 20},
        headers={settings.CALLER_HEADER: _session(ADMIN_ROLE)},
        auth=_signed(TEAM_B_KEY, "team-b-secret-key"),
        timeout=30,
    )
    assert claimed.status_code == 403, claimed.text
    assert gateway.forwarded[-1] == _session(TEAMS["b"][0])


@pytest.fixture
def proxy(gateway):
    """`invoke ui` in front of the team API stand-in, signing as team A."""
    from botocore.credentials import ReadOnlyCredentials
    from sigv4_gateway import port_of

    from mlflow_platform.signing_proxy import SigningProxy, target

    served = SigningProxy(
        to=target(f"http://127.0.0.1:{port_of(gateway.url)}", region="us-east-1"),
        credentials=lambda: ReadOnlyCredentials(TEAM_A_KEY, "team-a-secret-key", None),
    )
    served.serve_in_background()
    yield served
    served.close()


def test_the_example_runs_in_iam_mode_through_the_signing_proxy(iam, gateway, proxy):
    """Every request the client makes, artifacts and the model included, reaches the server
    only because the proxy signed it validly: the team API stand-in checks each signature."""
    from test_examples import _check, _run_example

    before = len(gateway.forwarded)
    experiment, model = f"proxied-{time.time_ns()}", f"proxied-model-{time.time_ns()}"
    output = _run_example({"MLFLOW_TRACKING_URI": proxy.url}, experiment, model)
    _check(iam, output, experiment, model)
    assert set(gateway.forwarded[before:]) == {_session(TEAMS["a"][0])}
    assert len(gateway.forwarded) - before > 10


def test_the_proxy_signs_with_refreshed_credentials(iam, gateway):
    """Credentials are read for every request: once the SDK refreshes them (a role session
    expiring), the next request is signed with the new ones."""
    import datetime

    from botocore.credentials import RefreshableCredentials
    from sigv4_gateway import Caller, port_of

    from mlflow_platform.signing_proxy import SigningProxy, target

    role = TEAMS["a"][0].rsplit("/", 1)[-1]
    issued = []

    def refresh() -> dict:
        n = len(issued) + 1
        key = f"ASIAEXAMPLEREFRESH{n:02d}"
        gateway_caller = Caller(
            f"refreshed-secret-{n}", f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/session-{n}"
        )
        gateway_callers[key] = gateway_caller
        issued.append(key)
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=2)
        return {"access_key": key, "secret_key": f"refreshed-secret-{n}", "token": "token",
                "expiry_time": expiry.isoformat()}  # fmt: skip

    from sigv4_gateway import Gateway

    from mlflow_platform.local.platform import LOAD_BALANCER_DNS_NAME

    gateway_callers: dict = {}
    refreshing = Gateway(target_port=port_of(iam["tracking_uri"]), host=LOAD_BALANCER_DNS_NAME,
                         callers=gateway_callers)  # fmt: skip
    credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    signing = SigningProxy(
        to=target(refreshing.url, region="us-east-1"),
        credentials=credentials.get_frozen_credentials,
    )
    signing.serve_in_background()
    try:
        search = f"{signing.url}/api/2.0/mlflow/experiments/search?max_results=1"
        newest = []
        for _ in range(2):
            assert requests.get(search, timeout=30).status_code == 200
            newest.append(f"session-{len(issued)}")
            time.sleep(2.5)  # past the expiry: botocore refreshes on the next read
    finally:
        signing.close()
        refreshing.close()
    # Each request was signed with the newest credentials the SDK had, and they changed.
    assert [arn.rsplit("/", 1)[-1] for arn in refreshing.forwarded] == newest
    assert newest[0] != newest[1]


def test_a_stack_cannot_register_a_session_of_another_role(iam, monkeypatch):
    """The attack as reproduced: a stack owning only `mallory-TeamRole-MMM` registers a session
    of a person's role whose session name is that role name; the person's signed requests
    must not act as the team."""
    suffix = str(time.time_ns() % 10**6)
    owned = f"arn:aws:iam::{ACCOUNT}:role/mallory-TeamRole-MMM"
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/PersonDataScientistRole/mallory-TeamRole-MMM"
    stack_id = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/mallory/{'3' * 8}"
    response = invoke(
        monkeypatch, tracking_url=iam["tracking_uri"],
        admin={"username": iam["username"], "password": iam["password"]},
        team_secret={"username": f"team/mallory{suffix}", "password": "m" * 24},
        request_type="Create", stack=Stack(stack_id=stack_id, roles=[owned]),
        team=f"mallory{suffix}", principal=session,
    )  # fmt: skip
    assert response is not None and response["Status"] == "FAILED", response
    assert f"does not own role {session}" in response["Reason"]
    person = As(iam, f"arn:aws:sts::{ACCOUNT}:assumed-role/PersonDataScientistRole/jobs")
    response = person.call("GET", "/api/2.0/mlflow/experiments/search", params={"max_results": 1})
    assert response.status_code == 403 and "has no MLflow user" in response.text


@pytest.mark.parametrize(
    "name", ["X_Mlflow_Platform_Caller", "x_mlflow_platform_caller", "X-Mlflow_Platform-Caller"]
)
def test_an_underscore_alias_cannot_name_the_caller(iam, name):
    """The attack: a team API whose routes are still NONE passes a header API Gateway does not
    overwrite; alone, WSGI reads it as the caller header, here an admin principal's session."""
    person = {"username": f"alias{time.time_ns()}", "password": "p" * 20}
    response = requests.post(
        f"{iam['tracking_uri']}/api/2.0/mlflow/users/create", json=person,
        headers={name: _session(ADMIN_ROLE)}, timeout=30,
    )  # fmt: skip
    assert response.status_code == 400, response.text
    assert repr(name.lower()) in response.text and settings.CALLER_HEADER in response.text
    admin = As(iam, None, auth=(iam["username"], iam["password"]))
    listed = admin.call("GET", "/api/2.0/mlflow/users/list").json()["users"]
    assert person["username"] not in {u["username"] for u in listed}


def test_a_team_api_with_routes_not_aws_iam_is_refused(iam):
    """The environment went from basic to iam and a team API kept its NONE routes: API Gateway
    checks no signature there, so its caller header names no one API Gateway verified. The
    team API states its routes' authorization on every request (overwritten, a fixed value)."""
    for route in ("NONE", ""):
        claimed = requests.post(
            f"{iam['tracking_uri']}/api/2.0/mlflow/users/create",
            json={"username": f"none{time.time_ns()}", "password": "n" * 20},
            headers={settings.CALLER_HEADER: _session(ADMIN_ROLE), ROUTE_HEADER: route},
            timeout=30,
        )
        assert claimed.status_code == 403, claimed.text
        assert f"{ROUTE_HEADER} = {route!r}" in claimed.text
        assert "update the team stack" in claimed.text
    # The team API as deployed in iam mode is served.
    served = _team(iam, "a")
    served.headers[ROUTE_HEADER] = "AWS_IAM"
    searched = served.call("GET", "/api/2.0/mlflow/experiments/search", params={"max_results": 1})
    assert searched.status_code == 200, searched.text


def test_an_origin_in_mlflows_cors_setting_is_served_and_no_other(iam):
    admin = (iam["username"], iam["password"])
    search = f"{iam['tracking_uri']}/api/2.0/mlflow/experiments/search?max_results=1"
    allowed = requests.get(search, headers={"Origin": ALLOWED_ORIGIN}, auth=admin, timeout=30)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    for origin in ("http://localhost:8888", "https://notebooks.example.com.evil.example"):
        refused = requests.get(search, headers={"Origin": origin}, auth=admin, timeout=30)
        assert refused.status_code == 403, (origin, refused.text)
        assert "access-control-allow-origin" not in refused.headers


@pytest.fixture(scope="module")
def a_artifacts(iam) -> dict[str, str]:
    """Team A's run with a file, a logged model with a file, and a registered version of it."""
    a = _team(iam, "a")
    experiment = a.post("experiments/create", {"name": f"a-signed-{time.time_ns()}"})[
        "experiment_id"
    ]
    run = a.post("runs/create", {"experiment_id": experiment})["run"]["info"]["run_id"]
    folder = f"{experiment}/{run}/artifacts"
    _upload(a, folder, "MLmodel", b"flavors: {}")
    model = a.call("POST", "/api/2.0/mlflow/logged-models",
                   json={"experiment_id": experiment, "name": "m"}).json()["model"]  # fmt: skip
    model_id = model["info"]["model_id"]
    _upload(a, model["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/"), "MLmodel",
            b"flavors: {}")  # fmt: skip
    name = f"a-signed-model-{time.time_ns()}"
    a.post("registered-models/create", {"name": name})
    a.post("model-versions/create",
           {"name": name, "source": f"models:/{model_id}", "model_id": model_id})  # fmt: skip
    return {"run": run, "folder": folder, "model_id": model_id, "name": name}


@pytest.mark.parametrize(
    ("method", "path", "target"),
    [
        ("POST", "/api/2.0/mlflow/artifacts/presigned-upload-url", "run"),
        ("POST", "/api/2.0/mlflow/artifacts/presigned-upload-url", "model"),
        ("POST", "/api/2.0/mlflow/artifacts/presigned-download-url", "run"),
        ("GET", "/api/2.0/mlflow-artifacts/presigned/{folder}/MLmodel", None),
        ("POST", "/api/2.0/mlflow-artifacts/mpu/create/{folder}", "mpu"),
        ("GET", "/model-versions/get-artifact", "version"),
    ],
    ids=["upload-run", "upload-model", "download-run", "presigned", "mpu", "model-version"],
)
def test_team_b_gets_no_signed_url_for_team_as_run_or_model(iam, a_artifacts, method, path,
                                                             target):  # fmt: skip
    """Every route that issues a presigned URL, asked by team B's role for team A's run, logged
    model or model version (the server signs with its own role: only MLflow's permission check
    stands between B and A's bytes)."""
    b = _team(iam, "b")
    body = {
        "run": {"run_id": a_artifacts["run"], "path": "MLmodel"},
        "model": {"model_id": a_artifacts["model_id"], "path": "MLmodel"},
        "mpu": {"path": "MLmodel", "num_parts": 1},
    }.get(target or "")
    params = {"name": a_artifacts["name"], "version": "1", "path": "MLmodel", "presigned": "true"}
    answer = b.call(method, path.format(folder=a_artifacts["folder"]), json=body,
                    params=params if target == "version" else None)  # fmt: skip
    assert answer.status_code == 403, answer.text
    assert "X-Amz" not in answer.text and "presigned_url" not in answer.text
    # The same request from team A passes the permission check: the route exists, and B was
    # refused for whose run or model it is. (The /mlflow/artifacts/presigned-* routes serve
    # direct-cloud artifact URIs only: for this platform's proxied ones MLflow answers 400.)
    own = _team(iam, "a").call(method, path.format(folder=a_artifacts["folder"]), json=body,
                               params=params if target == "version" else None)  # fmt: skip
    if "/mlflow/artifacts/presigned-" in path:
        assert own.status_code == 400 and "proxied artifact storage" in own.text, own.text
    else:
        assert own.status_code == 200, own.text
        assert "X-Amz-Signature" in own.text or "upload_id" in own.text, own.text[:300]
