"""Authorization headers basic mode cannot use are answered as a wrong password, on every route.

The real server of `invoke local` (PostgreSQL, basic auth, the platform's application); each
answer is compared with the server's own answer to a wrong password on the same route.
"""

from __future__ import annotations

import base64
import time

import pytest
import requests

WRONG = "Basic " + base64.b64encode(b"admin:wrong-password-123").decode()
ROUTES = [
    ("GET", "/api/2.0/mlflow/experiments/search?max_results=1", None),
    ("POST", "/api/2.0/mlflow/experiments/create", {"name": "never"}),
    ("POST", "/api/2.0/mlflow/runs/log-metric",  # the direct path (app.HotPaths)
     {"run_id": "0" * 32, "key": "k", "value": 1, "timestamp": 1}),
    ("POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": "0" * 32, "metrics": []}),
    ("GET", "/api/2.0/mlflow/users/get?username=admin", None),
    ("GET", "/ajax-api/2.0/mlflow/experiments/search?max_results=1", None),
]  # fmt: skip


def _basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


UNUSABLE = {
    "bearer": lambda _: "Bearer x",
    "bearer, no token": lambda _: "Bearer",
    "other scheme, no parameters": lambda _: "Token abc.def",
    # werkzeug reads user and password from any scheme's parameters: MLflow's Flask check
    # took this as the admin's credential.
    "digest with the admin's password": lambda password: (
        f'Digest username="admin", password="{password}"'
    ),
    "not base64": lambda _: "Basic !!!not-base64!!!",
    "bad base64 padding": lambda _: "Basic YWRtaW4",
    "no colon": lambda _: _basic(b"admin"),
    "not utf-8": lambda _: _basic(b"adm\xffin:secret"),
    "NUL in the user name": lambda _: _basic(b"ad\x00min:secret"),
    "NUL in the password": lambda password: _basic(f"admin:{password}\x00".encode()),
    "empty": lambda _: "Basic ",
}


@pytest.fixture(scope="module")
def server(platform):
    _, details = platform
    return details["tracking_uri"], details["password"]


def _send(uri: str, method: str, path: str, body: object, header: str) -> requests.Response:
    return requests.request(method, f"{uri}{path}", json=body, timeout=30,
                            headers={"Authorization": header})  # fmt: skip


@pytest.mark.parametrize("header", UNUSABLE.values(), ids=UNUSABLE.keys())
def test_unusable_credentials_are_answered_as_a_wrong_password(server, header):
    uri, password = server
    for method, path, body in ROUTES:
        wrong = _send(uri, method, path, body, WRONG)
        answer = _send(uri, method, path, body, header(password))
        assert (answer.status_code, answer.headers.get("WWW-Authenticate"), answer.text) == (
            wrong.status_code,
            wrong.headers.get("WWW-Authenticate"),
            wrong.text,
        ), f"{method} {path}"
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="mlflow"'
        assert "Traceback" not in answer.text and "NUL" not in answer.text


def test_unusable_credentials_write_nothing_and_the_unprotected_routes_still_answer(server):
    uri, password = server
    name = f"unusable-{time.time_ns()}"
    for header in UNUSABLE.values():
        created = _send(uri, "POST", "/api/2.0/mlflow/experiments/create", {"name": name},
                        header(password))  # fmt: skip
        assert created.status_code == 401
        assert _send(uri, "GET", "/health", None, header(password)).status_code == 200
    found = requests.get(f"{uri}/api/2.0/mlflow/experiments/get-by-name",
                         params={"experiment_name": name}, auth=("admin", password),
                         timeout=30)  # fmt: skip
    assert found.status_code == 404


def test_the_admins_basic_credential_still_works_on_every_route(server):
    uri, password = server
    header = _basic(f"admin:{password}".encode())
    for method, path, body in ROUTES:
        if path.endswith("create"):
            body = {"name": f"usable-{time.time_ns()}"}
        answer = _send(uri, method, path, body, header)
        # log-metric and log-batch name a run that does not exist: MLflow's 404 or 400.
        assert answer.status_code in (200, 400, 404), f"{method} {path}: {answer.text}"
        assert answer.status_code != 401
