"""`invoke ui`'s signing proxy: where it listens, what it signs for, and its errors."""

from __future__ import annotations

import subprocess
import sys

import boto3
import pytest
from botocore.credentials import ReadOnlyCredentials
from sigv4_gateway import Caller, verify

from mlflow_platform.paths import ROOT
from mlflow_platform.signing_proxy import (
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
