"""MLflow's AI gateway: off unless the environment turns it on; when on, provider keys are
encrypted with the platform's generated passphrase, not MLflow's public default.

With the gateway on as it was, a team made the server fetch a URL of its choosing and read
the answer, and a team's stored provider key decrypted with MLflow's default passphrase
(`mlflow/utils/crypto.py`, DEFAULT_KEK_PASSPHRASE), which is public.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

import pytest
import requests
from helpers import as_list, create_mlflow_user, task_container

from mlflow_platform.local.platform import LocalPlatform
from tracking_server import gateway_switch
from tracking_server import settings as names

# Every kind of gateway route MLflow 3.18 serves, and spellings a router might fold.
GATEWAY_ROUTES = [
    ("POST", "/api/3.0/mlflow/gateway/secrets/create"),
    ("POST", "/ajax-api/3.0/mlflow/gateway/secrets/create"),
    ("GET", "/ajax-api/3.0/mlflow/gateway/secrets/list"),
    ("POST", "/api/3.0/mlflow/gateway/endpoints/create"),
    ("POST", "/api/3.0/mlflow/gateway/model-definitions/create"),
    ("GET", "/ajax-api/3.0/mlflow/gateway/supported-providers"),
    ("GET", "/ajax-api/3.0/mlflow/gateway/secrets/config"),
    ("POST", "/gateway/some-endpoint/mlflow/invocations"),
    ("POST", "/gateway/mlflow/v1/chat/completions"),
    ("POST", "/ajax-api/2.0/mlflow/gateway-proxy"),
    ("POST", "/api/3.0/mlflow/Gateway/secrets/create"),
    ("POST", "//gateway/some-endpoint/mlflow/invocations"),
    ("GET", "/ajax-api/3.0/mlflow/assistant/config"),
    ("PUT", "/ajax-api/3.0/mlflow/assistant/config"),
]
SECRET_BODY = {"secret_name": "team-openai", "secret_value": {"api_key": "sk-team-key-123456"},
               "provider": "openai"}  # fmt: skip


def _secret_rows(local) -> int:
    with contextlib.closing(local.superuser("mlflow")) as db, db.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM secrets")
        return cursor.fetchone()[0]


@pytest.mark.parametrize(("method", "path"), GATEWAY_ROUTES, ids=[p for _, p in GATEWAY_ROUTES])
def test_every_gateway_route_is_off_by_default_for_everyone(platform, method, path):
    local, details = platform
    before = _secret_rows(local)
    admin = (details["username"], details["password"])
    for auth in (None, admin):
        answer = requests.request(method, details["tracking_uri"] + path, auth=auth,
                                  json=SECRET_BODY, timeout=30)  # fmt: skip
        assert answer.status_code == 403, (path, answer.status_code, answer.text[:200])
        assert answer.json() == {
            "error_code": "FEATURE_DISABLED",
            "message": gateway_switch.MESSAGE,
        }
    assert _secret_rows(local) == before


def test_what_is_not_the_gateway_still_answers(platform):
    _, details = platform
    admin = (details["username"], details["password"])
    for path in ("/api/2.0/mlflow/experiments/search", "/api/3.0/mlflow/server-info"):
        answer = requests.get(details["tracking_uri"] + path, auth=admin,
                              params={"max_results": 1}, timeout=30)  # fmt: skip
        assert answer.status_code == 200, (path, answer.text[:200])
    assert not gateway_switch.is_gateway_path("/api/2.0/mlflow/registered-models/search")


@pytest.fixture(scope="module")
def gateway_on():
    """A second local platform with AiGateway=on."""
    state = Path(tempfile.mkdtemp(prefix="mlflow-local-gw-"))
    state.chmod(0o755)
    local = LocalPlatform(state, progress=lambda _: None)
    try:
        yield local, local.up(server_env={names.AI_GATEWAY: "on"})
    finally:
        local.down()
        shutil.rmtree(state, ignore_errors=True)


def test_when_on_a_teams_provider_key_is_sealed_with_the_platforms_passphrase(gateway_on):
    from mlflow.utils.crypto import DEFAULT_KEK_PASSPHRASE, KEKManager, _decrypt_secret

    local, details = gateway_on
    create_mlflow_user(details, "gwteam", "gwteam-password-123")
    created = requests.post(
        details["tracking_uri"] + "/api/3.0/mlflow/gateway/secrets/create",
        json=SECRET_BODY, auth=("gwteam", "gwteam-password-123"), timeout=30,
    )  # fmt: skip
    assert created.status_code == 200, created.text
    with contextlib.closing(local.superuser("mlflow")) as db, db.cursor() as cursor:
        cursor.execute(
            "SELECT secret_id, secret_name, encrypted_value, wrapped_dek FROM secrets"
            " WHERE secret_name = %s",
            (SECRET_BODY["secret_name"],),
        )
        secret_id, name, value, dek = cursor.fetchone()
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException):
        _decrypt_secret(bytes(value), bytes(dek), KEKManager(DEFAULT_KEK_PASSPHRASE),
                        secret_id, name)  # fmt: skip
    platform_key = local._credentials().gateway_kek
    assert _decrypt_secret(bytes(value), bytes(dek), KEKManager(platform_key),
                           secret_id, name) == SECRET_BODY["secret_value"]  # fmt: skip


def test_the_server_refuses_to_start_the_gateway_without_its_passphrase():
    with pytest.raises(names.SettingsError) as refused:
        names.from_environ({
            names.AUTH_MODE: "basic", names.SQLITE_PATH: "/tmp/x.db",
            names.ARTIFACTS_DESTINATION: "/tmp/artifacts", names.ADMIN_USERNAME: "admin",
            names.ADMIN_PASSWORD: "p" * 16, names.SECRET_KEY: "k" * 40,
            names.AI_GATEWAY: "on",
        })  # fmt: skip
    assert any(p.startswith(f"{names.GATEWAY_KEK} is missing") for p in refused.value.problems)
    with pytest.raises(names.SettingsError) as refused:
        names.from_environ({names.AI_GATEWAY: "yes"})
    assert f"{names.AI_GATEWAY}='yes': must be one of off, on" in refused.value.problems


def test_the_task_gets_the_switch_and_the_passphrase_as_a_secret(environment):
    server = task_container(environment)
    environment_names = {e["Name"]: e["Value"] for e in server["Environment"]}
    assert environment_names[names.AI_GATEWAY] == {"Ref": "AiGateway"}
    secrets = {s["Name"]: s["ValueFrom"] for s in server["Secrets"]}
    assert names.GATEWAY_KEK in secrets
    assert names.GATEWAY_KEK not in environment_names
    parameter = environment["Parameters"]["AiGateway"]
    assert parameter["Default"] == "off" and parameter["AllowedValues"] == ["off", "on"]
    setup = task_container(environment, "database-setup")
    assert names.GATEWAY_KEK not in {s["Name"] for s in as_list(setup.get("Secrets", []))}
