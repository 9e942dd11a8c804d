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
from helpers import one_of_type

from mlflow_platform.local import LocalPlatform
from tracking_server import settings

ACCOUNT = "123456789012"
ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/platform/MlflowAdmins"
TEAMS = {
    "a": (f"arn:aws:iam::{ACCOUNT}:role/team-a-TeamRole-AAA", f"stack/team-a/{'1' * 8}"),
    "b": (f"arn:aws:iam::{ACCOUNT}:role/team-b-TeamRole-BBB", f"stack/team-b/{'2' * 8}"),
}


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
            server_env={settings.AUTH_MODE: "iam", settings.ADMIN_PRINCIPALS: ADMIN_ROLE}
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
    artifact = f"/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run}/artifacts/model.bin"
    data = os.urandom(2 * 1024 * 1024)
    assert a.call("PUT", artifact, data=data).status_code == 200
    model = f"model-a-{time.time_ns()}"
    a.post("registered-models/create", {"name": model})

    # Team A reads its own.
    assert a.call("GET", "/api/2.0/mlflow/runs/get", params={"run_id": run}).status_code == 200
    assert a.call("GET", artifact).content == data
    # Team B, signed by its own role through its own API, reaches none of it.
    for method, path, kwargs in [
        ("GET", "/api/2.0/mlflow/runs/get", {"params": {"run_id": run}}),
        ("GET", "/api/2.0/mlflow/experiments/get", {"params": {"experiment_id": experiment}}),
        ("POST", "/api/2.0/mlflow/runs/log-metric",
         {"json": {"run_id": run, "key": "loss", "value": 9.0, "timestamp": 2, "step": 1}}),
        ("POST", "/api/2.0/mlflow/runs/delete", {"json": {"run_id": run}}),
        ("GET", artifact, {}),
        ("PUT", artifact, {"data": b"overwritten"}),
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
    assert a.call("GET", artifact).content == data


def test_who_is_refused_and_who_is_the_admin(iam):
    outsider = As(iam, f"arn:aws:sts::{ACCOUNT}:assumed-role/SomeOtherRole/session")
    response = outsider.call("GET", "/api/2.0/mlflow/experiments/search",
                             params={"max_results": 1})  # fmt: skip
    assert response.status_code == 403 and "has no MLflow user" in response.text
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
    listed = admin_role.call("GET", "/api/2.0/mlflow/users/list")
    assert listed.status_code == 200, listed.text
    # Health checks need nothing.
    assert requests.get(f"{iam['tracking_uri']}/health", timeout=30).status_code == 200


def test_a_team_password_without_the_header_is_refused(iam):
    """Teams have a password in their secret (both modes); in iam mode it opens nothing."""
    users = As(iam, None, auth=(iam["username"], iam["password"])).call(
        "GET", "/api/2.0/mlflow/users/list"
    )
    team_users = [u["username"] for u in users.json()["users"] if u["username"].startswith("team/")]
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
    _, task = one_of_type(environment, "AWS::ECS::TaskDefinition")
    (container,) = task["Properties"]["ContainerDefinitions"]
    names = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert names[settings.ADMIN_PRINCIPALS] == {"Ref": "AdminPrincipals"}
