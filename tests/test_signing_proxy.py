"""`invoke ui`'s signing proxy: where it listens, what it signs for, and its errors."""

from __future__ import annotations

import datetime
import subprocess
import sys

import boto3
import botocore.session
import pytest
import requests
from botocore.credentials import (
    CredentialProvider,
    Credentials,
    ReadOnlyCredentials,
    RefreshableCredentials,
)
from sigv4_gateway import Caller, Gateway, verify

from mlflow_platform.paths import ROOT
from mlflow_platform.signing_proxy import (
    LoopbackServer,
    ProxyError,
    SigningProxy,
    frozen_credentials,
    sign,
    target,
)

API = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"
CREDENTIALS = ReadOnlyCredentials("AKIAEXAMPLE000000001", "secret", None)


@pytest.mark.parametrize("bind", ["0.0.0.0", "10.0.0.5", "::", "example.com"])
def test_it_listens_on_a_loopback_address_only(bind):
    with pytest.raises(ProxyError) as error:
        SigningProxy(to=target(API), credentials=lambda: CREDENTIALS, bind=bind)
    assert f"--bind {bind!r}" in str(error.value) and "loopback address only" in str(error.value)


@pytest.mark.parametrize("bind", ["127.0.0.1", "::1"])
def test_loopback_addresses_are_served(bind):
    proxy = SigningProxy(to=target(API), credentials=lambda: CREDENTIALS, bind=bind)
    try:
        assert proxy.url.startswith(("http://127.0.0.1:", "http://[::1]:"))
    finally:
        proxy.close()


def test_the_region_comes_from_the_api_url_and_only_https_leaves_the_machine():
    assert target(API).region == "eu-west-1"
    assert target(API + "/", region="us-east-2").region == "us-east-2"
    with pytest.raises(ProxyError, match="must be the team API's https:// URL"):
        target("http://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com")
    with pytest.raises(ProxyError, match="--region is needed"):
        target("https://mlflow.example.com")


def test_a_signature_is_what_api_gateway_checks():
    """The proxy's signature verifies with botocore's own signer (tests/sigv4_gateway.py), and
    fails with another secret or a changed body."""
    url = f"{API}/api/2.0/mlflow/runs/log-metric"
    body = b'{"run_id": "r", "key": "loss", "value": 1.0, "timestamp": 1, "step": 0}'
    headers = sign(
        method="POST",
        url=url,
        body=body,
        region="eu-west-1",
        headers={"Content-Type": "application/json", "Host": API.split("//")[1]},
        credentials=CREDENTIALS,
    )
    good = {CREDENTIALS.access_key: Caller("secret", "arn:aws:iam::123456789012:user/alice")}
    assert isinstance(verify("POST", url, headers, body, good), Caller)
    wrong = {CREDENTIALS.access_key: Caller("other", "arn:aws:iam::123456789012:user/alice")}
    assert isinstance(verify("POST", url, headers, body, wrong), str)
    assert isinstance(verify("POST", url, headers, body + b" ", good), str)


def test_no_credentials_is_a_clear_error(tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ProxyError, match="no AWS credentials found"):
        frozen_credentials(boto3.Session(region_name="eu-west-1"))


def test_the_task_says_so_too(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_EC2_METADATA_DISABLED": "true", "HOME": str(tmp_path)}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "ui", "--url", API, "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "invoke ui: no AWS credentials found" in result.stderr


def test_the_task_refuses_to_listen_beyond_loopback(tmp_path):
    """`invoke ui --bind 0.0.0.0` with working credentials: refused before anything listens."""
    env = {"PATH": "/usr/bin:/bin", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "HOME": str(tmp_path),
           "AWS_ACCESS_KEY_ID": CREDENTIALS.access_key,
           "AWS_SECRET_ACCESS_KEY": "secret"}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "ui", "--url", API, "--bind", "0.0.0.0", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "invoke ui: --bind '0.0.0.0'" in result.stderr
    assert "loopback address only" in result.stderr


class _Provider(CredentialProvider):
    """A source in the SDK's chain whose credentials expire, as a role's or SSO's do."""

    METHOD = "test-expiring"

    def __init__(self, issue) -> None:
        super().__init__()
        self.issue = issue

    def load(self) -> RefreshableCredentials:
        return RefreshableCredentials.create_from_metadata(self.issue(), self.issue, self.METHOD)


def test_each_request_is_signed_with_what_the_sdk_chain_holds_now():
    """frozen_credentials() over a session, as `invoke ui` wires it: once the chain's
    credentials are refreshed, the next request is signed with the new ones, and the team API
    stand-in verifies each signature. botocore refreshes credentials that expire within 10
    minutes on every read (its mandatory refresh window), so each request here sees new ones."""
    callers: dict[str, Caller] = {}
    issued: list[str] = []

    def issue() -> dict:
        n = len(issued) + 1
        key, secret = f"ASIAEXAMPLEROTATE{n:03d}", f"rotated-secret-{n}"
        callers[key] = Caller(secret, f"arn:aws:sts::123456789012:assumed-role/Team/session-{n}")
        issued.append(key)
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
        return {"access_key": key, "secret_key": secret, "token": f"token-{n}",
                "expiry_time": expiry.isoformat()}  # fmt: skip

    core = botocore.session.Session()
    core.get_component("credential_provider").insert_before("env", _Provider(issue))
    session = boto3.Session(botocore_session=core, region_name="eu-west-1")
    backend = LoopbackServer(lambda *_: (200, {"Content-Type": "text/plain"}, b"ok"))
    backend.serve_in_background()
    gateway = Gateway(target_port=backend.port, host="backend.internal", callers=callers)
    proxy = SigningProxy(
        to=target(gateway.url, region="eu-west-1"), credentials=frozen_credentials(session)
    )
    proxy.serve_in_background()
    try:
        for _ in range(3):
            response = requests.get(f"{proxy.url}/api/2.0/mlflow/experiments/search", timeout=30)
            assert response.status_code == 200, response.text
    finally:
        proxy.close()
        gateway.close()
        backend.close()
    sessions = [arn.rsplit("/", 1)[-1] for arn in gateway.forwarded]
    assert len(sessions) == 3 and len(set(sessions)) == 3, sessions  # a new key each time
    assert sessions[-1] == f"session-{len(issued)}"  # the newest one the chain had


class _Vanishing:
    """A session whose credentials disappear (a profile's cache deleted, an SSO logout)."""

    def __init__(self) -> None:
        self.credentials: Credentials | None = Credentials(CREDENTIALS.access_key, "secret")

    def get_credentials(self) -> Credentials | None:
        return self.credentials


def test_credentials_gone_after_start_are_a_clear_answer_not_a_crash():
    session = _Vanishing()
    proxy = SigningProxy(to=target(API), credentials=frozen_credentials(session))
    proxy.serve_in_background()
    try:
        session.credentials = None
        response = requests.get(f"{proxy.url}/api/2.0/mlflow/experiments/search", timeout=30)
    finally:
        proxy.close()
    assert response.status_code == 502
    assert response.text == "mlflow-platform: the AWS credentials are no longer available\n"
