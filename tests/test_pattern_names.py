"""A name a team chooses never becomes a grant pattern (the model named `*`).

MLflow's auth app gives a resource's creator MANAGE on its name, and its grant matching
(`mlflow/server/auth/permissions.py`, `matches`) reads a grant on `*` as one on every
resource of the type: a model named `*` made its creator the manager of every team's models.
Each client-named grant type is tried here as team beta, against team alpha's resources, on the
local platform in basic mode, and as team b's role through a team API in iam mode; the types
keyed by ids the server assigns are listed, so a type MLflow adds fails the first test until
it is accounted for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest
import requests
from helpers import create_mlflow_user
from iam_platform import iam_teams  # noqa: F401  (a fixture: the iam-mode platform)

from tracking_server import grant_names

PASSWORD = "pattern-test-password"


def _api(details, path: str, user: tuple[str, str], *, method: str = "POST", **kwargs):
    return requests.request(
        method, f"{details['tracking_uri']}{path}", auth=user, timeout=30, **kwargs
    )


@pytest.fixture(scope="module")
def teams(platform):
    """alpha with a model (alias `champion`), a prompt and an experiment; beta with nothing."""
    _, details = platform
    suffix = time.time_ns() % 10**9
    alpha, beta = (f"alpha{suffix}", PASSWORD), (f"beta{suffix}", PASSWORD)
    for name, password in (alpha, beta):
        create_mlflow_user(details, name, password)
    model = f"alpha-model-{suffix}"
    assert _api(details, "/api/2.0/mlflow/registered-models/create", alpha,
                json={"name": model}).status_code == 200  # fmt: skip
    experiment = _api(details, "/api/2.0/mlflow/experiments/create", alpha,
                      json={"name": f"alpha-{suffix}"}).json()["experiment_id"]  # fmt: skip
    run = _api(details, "/api/2.0/mlflow/runs/create", alpha,
               json={"experiment_id": experiment}).json()["run"]["info"]["run_id"]  # fmt: skip
    version = _api(details, "/api/2.0/mlflow/model-versions/create", alpha,
                   json={"name": model, "source": f"runs:/{run}/model", "run_id": run})  # fmt: skip
    assert version.status_code == 200, version.text
    assert _api(details, "/api/2.0/mlflow/registered-models/alias", alpha,
                json={"name": model, "alias": "champion", "version": "1"}).ok  # fmt: skip
    prompt = f"alpha-prompt-{suffix}"
    assert _api(details, "/api/2.0/mlflow/registered-models/create", alpha,
                json={"name": prompt, "tags": [{"key": "mlflow.prompt.is_prompt",
                                                "value": "true"}]}).ok  # fmt: skip
    return {"alpha": alpha, "beta": beta, "model": model, "prompt": prompt,
            "experiment": experiment}  # fmt: skip


def _beta_reaches_nothing_of_alphas(details, teams) -> None:
    beta = teams["beta"]
    for name in (teams["model"], teams["prompt"]):
        got = _api(details, "/api/2.0/mlflow/registered-models/get", beta, method="GET",
                   params={"name": name})  # fmt: skip
        assert got.status_code == 403, (name, got.status_code, got.text)
    moved = _api(details, "/api/2.0/mlflow/registered-models/alias", beta,
                 json={"name": teams["model"], "alias": "champion", "version": "1"})  # fmt: skip
    assert moved.status_code == 403, moved.text
    deleted = _api(details, "/api/2.0/mlflow/registered-models/delete", beta, method="DELETE",
                   json={"name": teams["model"]})  # fmt: skip
    assert deleted.status_code == 403, deleted.text


def _pattern_grants(local) -> list[tuple]:
    with contextlib.closing(local.superuser("mlflow_auth")) as db, db.cursor() as cursor:
        cursor.execute(
            "SELECT u.username, rp.resource_type, rp.resource_pattern FROM role_permissions rp"
            " JOIN user_role_assignments a ON a.role_id = rp.role_id"
            " JOIN users u ON u.id = a.user_id"
            " WHERE rp.resource_pattern = '*' AND NOT u.is_admin"
        )
        return cursor.fetchall()


def test_every_type_mlflow_keys_grants_by_is_accounted_for():
    """MLflow's own table of grant types, not a copy: a new type fails here until the guard
    says where its grant key comes from."""
    assert grant_names.grantable_types() == set(grant_names.GRANT_KEYS)
    assert set(grant_names.GRANT_KEYS) > grant_names.CLIENT_NAMED
    for kind in grant_names.CLIENT_NAMED:
        assert grant_names.is_pattern(kind, "*")
        assert not grant_names.is_pattern(kind, "my-model")


# (what beta tries, path, body, the HTTP statuses that refuse it, words the refusal must say)
ATTEMPTS = [
    ("a registered model named *", "/api/2.0/mlflow/registered-models/create",
     {"name": "*"}, (400,), ("name = '*'", "wildcard")),
    ("the same through the UI's ajax route", "/ajax-api/2.0/mlflow/registered-models/create",
     {"name": "*"}, (400,), ("name = '*'", "wildcard")),
    ("a prompt named *", "/api/2.0/mlflow/registered-models/create",
     {"name": "*", "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]}, (400,),
     ("name = '*'", "wildcard")),
    ("a scorer named *", "/api/3.0/mlflow/scorers/register",
     {"experiment_id": "EXPERIMENT", "name": "*", "serialized_scorer": "{}"}, (400,),
     ("name = '*'", "wildcard")),
    ("an MCP server named *", "/api/3.0/mlflow/mcp-servers", {"name": "*"}, (400, 422), ()),
    ("a skill named *", "/api/3.0/mlflow/skills", {"name": "*"}, (400, 422), ()),
    ("a gateway secret named *", "/api/3.0/mlflow/gateway/secrets/create",
     {"secret_name": "*", "secret_value": {"api_key": "x"}, "provider": "openai"},
     (400, 403, 404), ()),
    ("a gateway model definition named *", "/api/3.0/mlflow/gateway/model-definitions/create",
     {"name": "*", "secret_id": "s", "provider": "openai", "model_name": "m"},
     (400, 403, 404), ()),
    ("a gateway endpoint named *", "/api/3.0/mlflow/gateway/endpoints/create",
     {"name": "*", "model_configs": []}, (400, 403, 404), ()),
]  # fmt: skip


@pytest.mark.parametrize(
    ("attempt", "path", "body", "refused", "says"), ATTEMPTS, ids=[a[0] for a in ATTEMPTS]
)
def test_a_team_that_names_anything_star_is_refused_and_gains_nothing(
    platform, teams, attempt, path, body, refused, says
):
    local, details = platform
    if body.get("experiment_id") == "EXPERIMENT":
        own = _api(details, "/api/2.0/mlflow/experiments/create", teams["beta"],
                   json={"name": f"beta-scorers-{time.time_ns()}"}).json()  # fmt: skip
        body = {**body, "experiment_id": own["experiment_id"]}
    answer = _api(details, path, teams["beta"], json=body)
    assert answer.status_code in refused, (attempt, answer.status_code, answer.text)
    for words in says:
        assert words in answer.json()["message"], answer.text
    _beta_reaches_nothing_of_alphas(details, teams)
    assert [g for g in _pattern_grants(local) if g[0] == teams["beta"][0]] == []


@pytest.mark.parametrize("key", ["new_name", "newName"])
def test_a_rename_onto_star_is_refused_in_either_spelling_of_the_field(platform, teams, key):
    """protobuf's JSON parser takes `newName` for `new_name`: the guard reads the request with
    MLflow's own parser, so both are the same name to it."""
    local, details = platform
    own = f"beta-model-{time.time_ns()}"
    assert _api(details, "/api/2.0/mlflow/registered-models/create", teams["beta"],
                json={"name": own}).ok  # fmt: skip
    answer = _api(details, "/api/2.0/mlflow/registered-models/rename", teams["beta"],
                  json={"name": own, key: "*"})  # fmt: skip
    assert answer.status_code == 400, answer.text
    assert "new_name = '*'" in answer.json()["message"]
    _beta_reaches_nothing_of_alphas(details, teams)
    assert [g for g in _pattern_grants(local) if g[0] == teams["beta"][0]] == []


def test_an_admin_cannot_name_a_model_star_either(platform):
    _, details = platform
    admin = (details["username"], details["password"])
    answer = _api(details, "/api/2.0/mlflow/registered-models/create", admin, json={"name": "*"})
    assert answer.status_code == 400, answer.text


def test_the_auth_store_refuses_a_pattern_grant_for_a_non_admin_outside_an_admins_request(
    platform, teams
):
    """The second layer, for a route a later MLflow adds: the store itself refuses."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    local, _ = platform
    store = SqlAlchemyStore()
    store.init_db(local.database().uri("mlflow_auth"))
    try:
        grant_names.guard_grants(store)
        with pytest.raises(grant_names.PatternGrantRefused, match="only an admin may grant"):
            store.grant_user_permission(teams["beta"][0], "registered_model", "*", "MANAGE")
        with pytest.raises(grant_names.PatternGrantRefused):
            store.grant_user_permissions(teams["beta"][0], [("prompt", "*", "READ")])
        store.grant_user_permission(teams["beta"][0], "registered_model", "beta-own", "READ")
    finally:
        store.engine.dispose()
    assert [g for g in _pattern_grants(local) if g[0] == teams["beta"][0]] == []


def test_an_admins_deliberate_wildcard_read_or_deny_is_kept_at_start(platform, teams):
    """MLflow records no grantor: what a creator got for naming a resource `*` is MANAGE, and
    only that goes; an admin's READ or DENY on `*` for a user stays (a DENY removed would
    widen access)."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    local, details = platform
    admin = (details["username"], details["password"])
    auditor, vetoed = f"auditor{time.time_ns()}", f"vetoed{time.time_ns()}"
    for user in (auditor, vetoed):
        create_mlflow_user(details, user, PASSWORD)
    for user, permission in ((auditor, "READ"), (vetoed, "DENY")):
        granted = _api(details, "/api/3.0/mlflow/users/permissions/grant", admin, json={
            "username": user, "resource_type": "registered_model", "resource_id": "*",
            "permission": permission})  # fmt: skip
        assert granted.status_code == 200, granted.text
    store = SqlAlchemyStore()
    store.init_db(local.database().uri("mlflow_auth"))
    try:
        removed = grant_names.remove_pattern_grants(store.engine, lambda _: None)
    finally:
        store.engine.dispose()
    assert not [r for r in removed if r["user"] in (auditor, vetoed)]
    assert {(auditor, "registered_model", "*"), (vetoed, "registered_model", "*")} <= set(
        _pattern_grants(local)
    )
    got = _api(details, "/api/2.0/mlflow/registered-models/get", (auditor, PASSWORD),
               method="GET", params={"name": teams["model"]})  # fmt: skip
    assert got.status_code == 200, got.text  # the admin's choice, still in force


def test_a_planted_pattern_grant_is_removed_at_start_and_the_log_names_it(platform, teams):
    """What an older MLflow let in: beta holds MANAGE on every model through its own role.
    The next server start removes it, logs who held what, and beta is refused again."""
    local, details = platform
    beta = teams["beta"][0]
    with contextlib.closing(local.superuser("mlflow_auth")) as db, db.cursor() as cursor:
        cursor.execute("SELECT id FROM users WHERE username = %s", (beta,))
        (user_id,) = cursor.fetchone()
        role = f"__user_{user_id}__"
        cursor.execute(
            "INSERT INTO roles (name, workspace) SELECT %s, 'default'"
            " WHERE NOT EXISTS (SELECT 1 FROM roles WHERE name = %s)",
            (role, role),
        )
        cursor.execute("SELECT id FROM roles WHERE name = %s", (role,))
        (role_id,) = cursor.fetchone()
        cursor.execute(
            "INSERT INTO user_role_assignments (user_id, role_id) SELECT %s, %s WHERE NOT EXISTS"
            " (SELECT 1 FROM user_role_assignments WHERE user_id = %s AND role_id = %s)",
            (user_id, role_id, user_id, role_id),
        )
        cursor.execute(
            "INSERT INTO role_permissions (role_id, resource_type, resource_pattern, permission)"
            " VALUES (%s, 'registered_model', '*', 'MANAGE')",
            (role_id,),
        )
    assert (beta, "registered_model", "*") in _pattern_grants(local)
    # The planted grant is live: beta now reads alpha's model.
    got = _api(details, "/api/2.0/mlflow/registered-models/get", teams["beta"], method="GET",
               params={"name": teams["model"]})  # fmt: skip
    assert got.status_code == 200, got.text

    os.killpg(local.status()["server"]["pid"], signal.SIGKILL)
    _until_closed(local._state()["server"]["port"])
    local.up()

    assert [g for g in _pattern_grants(local) if g[0] == teams["beta"][0]] == []
    log = (local.dir / "server.log").read_text()
    [line] = [line for line in log.splitlines() if "removed a pattern grant" in line]
    assert f'"user": "{beta}"' in line and '"resource_pattern": "*"' in line, line
    assert '"permission": "MANAGE"' in line and '"resource_type": "registered_model"' in line
    _beta_reaches_nothing_of_alphas(details, teams)


def test_in_iam_mode_a_team_role_that_names_anything_star_is_refused(iam_teams):  # noqa: F811
    """The same attempts, signed by team b's role through its team API (SigV4 checked, the
    caller header set by the team API), against team a's model."""
    from requests_auth_aws_sigv4 import AWSSigV4

    def signed(team: str) -> AWSSigV4:
        key, secret = iam_teams.keys[team]
        return AWSSigV4("execute-api", region="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key=secret)  # fmt: skip

    def call(team: str, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, iam_teams.gateway_url + path, auth=signed(team),
                                timeout=30, **kwargs)  # fmt: skip

    model = f"a-model-{time.time_ns()}"
    assert call("a", "POST", "/api/2.0/mlflow/registered-models/create", json={"name": model}).ok
    own = call("b", "POST", "/api/2.0/mlflow/experiments/create",
               json={"name": f"b-{time.time_ns()}"}).json()["experiment_id"]  # fmt: skip
    for attempt, path, body, refused, says in ATTEMPTS:
        if body.get("experiment_id") == "EXPERIMENT":
            body = {**body, "experiment_id": own}
        answer = call("b", "POST", path, json=body)
        assert answer.status_code in refused, (attempt, answer.status_code, answer.text)
        for words in says:
            assert words in answer.json()["message"], answer.text
    mine = f"b-model-{time.time_ns()}"
    assert call("b", "POST", "/api/2.0/mlflow/registered-models/create", json={"name": mine}).ok
    renamed = call("b", "POST", "/api/2.0/mlflow/registered-models/rename",
                   json={"name": mine, "newName": "*"})  # fmt: skip
    assert renamed.status_code == 400, renamed.text
    for method, path, kwargs in [
        ("GET", "/api/2.0/mlflow/registered-models/get", {"params": {"name": model}}),
        ("DELETE", "/api/2.0/mlflow/registered-models/delete", {"json": {"name": model}}),
    ]:
        assert call("b", method, path, **kwargs).status_code == 403
    assert call("a", "GET", "/api/2.0/mlflow/registered-models/get", params={"name": model}).ok


def _until_closed(port: int, timeout: float = 30) -> None:
    """A killed server's port is free a moment later, not at once."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"port {port} still answers {timeout:.0f}s after the server was killed")
