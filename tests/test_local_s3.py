"""The local platform's S3 endpoint (mlflow_platform/local/s3_endpoint.py): objects survive
`invoke local down` and `up`, and only requests signed with the credentials `up` generated,
or presigned URLs the server issued, are served; another OS user gets nothing else."""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from mlflow_platform.local import s3_endpoint

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Run as a team's notebook would, with only the client environment the platform publishes.
CLIENT = """
import hashlib, json, sys, time
from pathlib import Path
from mlflow import MlflowClient

phase, work = sys.argv[1], Path(sys.argv[2])
client = MlflowClient()
if phase == "log":
    run = client.create_run(client.create_experiment(f"kept-{time.time_ns()}")).info.run_id
    client.log_artifacts(run, str(work / "upload"), "kept")
    name = f"kept-model-{time.time_ns()}"
    client.create_registered_model(name)
    client.create_model_version(name, f"runs:/{run}/kept", run_id=run)
    print(json.dumps({"run": run, "model": name}))
else:
    ids = json.loads(sys.argv[3])
    got = {}
    for where, uri in (("run", f"runs:/{ids['run']}/kept"), ("model", f"models:/{ids['model']}/1")):
        import mlflow
        out = mlflow.artifacts.download_artifacts(uri, dst_path=str(work / where))
        got[where] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                      for p in sorted(Path(out).rglob("*")) if p.is_file()}
    print(json.dumps(got))
"""


def _client_env(details: dict, tmp_path: Path) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    return {
        **kept,
        **details["client_environment"],
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }


def _run_client(details: dict, tmp_path: Path, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, *args], env=_client_env(details, tmp_path),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _s3(details: dict):
    return boto3.client("s3", endpoint_url=details["s3_endpoint"], region_name="us-east-1",
                        config=Config(signature_version="s3v4"),
                        **details["s3_credentials"])  # fmt: skip


def test_artifacts_and_models_logged_before_down_download_byte_for_byte_after_up(
    platform, tmp_path
):
    import hashlib

    local, details = platform
    upload = tmp_path / "upload"
    upload.mkdir()
    sent = {}
    for name, size in (("notes.txt", 12), ("weights.bin", 12 * 1024 * 1024 + 7)):
        data = os.urandom(size)
        (upload / name).write_bytes(data)
        sent[name] = hashlib.sha256(data).hexdigest()
    ids = _run_client(details, tmp_path, "log", str(tmp_path))
    started = time.monotonic()
    try:
        assert "s3" in local.down()
        assert local.status()["s3"]["running"] is False
    finally:
        assert local.up() == details
    restarted = time.monotonic() - started
    got = _run_client(details, tmp_path, "fetch", str(tmp_path), json.dumps(ids))
    assert got == {"run": sent, "model": sent}
    assert "objects restored from" in (local.dir / "s3.log").read_text()
    print(f"down and up in {restarted:.1f}s")


def test_the_endpoints_state_is_private(platform):
    local, _ = platform
    assert os.stat(local.dir / "credentials.json").st_mode & 0o777 == 0o600
    assert os.stat(local.dir / "s3.json").st_mode & 0o777 == 0o600
    assert os.stat(local.dir / "s3").st_mode & 0o777 == 0o700
    assert os.stat(local.dir / "s3" / "blobs").st_mode & 0o777 == 0o700
    credentials = json.loads((local.dir / "credentials.json").read_text())
    assert credentials["s3_access_key"] != "local"
    # Not on a command line or in the environment of the endpoint's process, which others see.
    pid = local.status()["s3"]["pid"]
    assert credentials["s3_secret_key"].encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert credentials["s3_secret_key"].encode() not in Path(f"/proc/{pid}/environ").read_bytes()


@pytest.fixture
def other_user():
    """A throwaway OS user (root only: useradd)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a throwaway OS user (useradd); run the suite as root")
    if shutil.which("useradd") is None or shutil.which("curl") is None:
        pytest.skip("useradd and curl are needed")
    name = f"s3probe{uuid.uuid4().hex[:6]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True)  # fmt: skip
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)


def _admin(details: dict) -> dict[str, str]:
    token = base64.b64encode(f"{details['username']}:{details['password']}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_another_os_user_gets_nothing_but_what_a_presigned_url_grants(platform, other_user):
    _, details = platform
    endpoint, bucket, s3 = details["s3_endpoint"], details["bucket"], _s3(details)
    api = f"{details['tracking_uri']}/api/2.0/mlflow"
    experiment = requests.post(f"{api}/experiments/create", headers=_admin(details),
                               json={"name": f"probe-{time.time_ns()}"}, timeout=30)  # fmt: skip
    experiment_id = experiment.json()["experiment_id"]
    run = requests.post(f"{api}/runs/create", headers=_admin(details),
                        json={"experiment_id": experiment_id}, timeout=30)  # fmt: skip
    run_id = run.json()["run"]["info"]["run_id"]
    key = f"artifacts/{experiment_id}/{run_id}/artifacts/model.pkl"
    s3.put_object(Bucket=bucket, Key=key, Body=b"the real model")
    before = [(o["Key"], o["ETag"]) for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]

    def curl(*args: str) -> tuple[int, str]:
        done = subprocess.run(
            ["runuser", "-u", other_user, "--", "curl", "-sS", "-o", "-", "-w", "\n%{http_code}",
             *args],
            capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"]},
        )  # fmt: skip
        body, _, status = done.stdout.rpartition("\n")
        return int(status or 0), body

    wrong = f"{details['s3_credentials']['aws_access_key_id']}:not-the-secret"
    attempts = {
        "unsigned put": ("-X", "PUT", "--data-binary", "evil", f"{endpoint}/{bucket}/{key}"),
        "unsigned get": (f"{endpoint}/{bucket}/{key}",),
        "unsigned list": (f"{endpoint}/{bucket}?list-type=2",),
        "unsigned delete": ("-X", "DELETE", f"{endpoint}/{bucket}/{key}"),
        "moto reset": ("-X", "POST", f"{endpoint}/moto-api/reset"),
        "wrong secret put": ("--aws-sigv4", "aws:amz:us-east-1:s3", "--user", wrong,
                             "-X", "PUT", "--data-binary", "evil",
                             f"{endpoint}/{bucket}/{key}"),
        "wrong secret get": ("--aws-sigv4", "aws:amz:us-east-1:s3", "--user", wrong,
                             f"{endpoint}/{bucket}/{key}"),
        "the old key": ("--aws-sigv4", "aws:amz:us-east-1:s3", "--user", "local:local",
                        f"{endpoint}/{bucket}?list-type=2"),
    }  # fmt: skip
    answers = {what: curl(*args) for what, args in attempts.items()}
    assert {what: status for what, (status, _) in answers.items()} == dict.fromkeys(attempts, 403)
    assert "SignatureDoesNotMatch" in answers["wrong secret put"][1]
    assert "InvalidAccessKeyId" in answers["the old key"][1]
    assert "the real model" not in "".join(body for _, body in answers.values())
    # The management API is refused even with the right signature.
    assert requests.post(f"{endpoint}/moto-api/reset", timeout=30).status_code == 403
    after = [(o["Key"], o["ETag"]) for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert after == before
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"the real model"

    # A URL the server signs for the run's artifact carries a valid signature: it works.
    signed = requests.get(
        f"{details['tracking_uri']}/api/2.0/mlflow-artifacts/presigned/"
        f"{experiment_id}/{run_id}/artifacts/model.pkl",
        headers=_admin(details), timeout=30,
    )  # fmt: skip
    assert signed.status_code == 200, signed.text
    url = signed.json().get("presigned_url") or signed.json()["url"]
    assert curl(url) == (200, "the real model")
    # ... for that object and method only.
    assert curl("-X", "PUT", "--data-binary", "evil", url)[0] == 403
    assert curl(url.replace("model.pkl", "other.pkl"))[0] == 403


def test_a_browser_preflight_is_answered_without_credentials(platform):
    """The local UI downloads on presigned URLs from its own origin; the preflight carries no
    signature and changes nothing."""
    _, details = platform
    origin = details["tracking_uri"]
    answer = requests.options(
        f"{details['s3_endpoint']}/{details['bucket']}/artifacts/x",
        headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "range"},
        timeout=30,
    )  # fmt: skip
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] in (origin, "*")


# -- the signature check on its own -----------------------------------------------------------
KEY, SECRET = "AKIAEXAMPLEEXAMPLE22", "secret"
CREDENTIALS = {KEY: SECRET}
HOST = "127.0.0.1:9000"


def _presign(method: str, path: str, expires: int = 300, when: datetime.datetime | None = None):
    client = boto3.client("s3", endpoint_url=f"http://{HOST}", region_name="us-east-1",
                          aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                          config=Config(signature_version="s3v4"))  # fmt: skip
    operation = {"GET": "get_object", "PUT": "put_object"}[method]
    bucket, _, key = path.lstrip("/").partition("/")
    url = client.generate_presigned_url(operation, Params={"Bucket": bucket, "Key": key},
                                        ExpiresIn=expires)  # fmt: skip
    return url.split(HOST, 1)[1]


def _signed(method: str, uri: str, body: bytes, secret: str = SECRET) -> list[tuple[str, str]]:
    request = AWSRequest(method=method, url=f"http://{HOST}{uri}", data=body)
    request.headers["X-Amz-Content-SHA256"] = __import__("hashlib").sha256(body).hexdigest()
    S3SigV4Auth(Credentials(KEY, secret), "s3", "us-east-1").add_auth(request)
    return [("Host", HOST), *request.headers.items()]


def test_verify_accepts_signed_and_presigned_requests_and_refuses_the_rest():
    uri = "/bucket/a%20b%2Bc/%C3%BC.txt"
    headers = _signed("PUT", uri, b"data")
    assert isinstance(s3_endpoint.verify("PUT", uri, headers, CREDENTIALS, body=lambda: b"data"),
                      s3_endpoint.Verified)  # fmt: skip
    # The payload must be the one signed, the secret ours, the request the one signed.
    assert s3_endpoint.verify("PUT", uri, headers, CREDENTIALS,
                              body=lambda: b"evil") == s3_endpoint.BAD_DIGEST  # fmt: skip
    wrong = _signed("PUT", uri, b"data", secret="guess")
    assert s3_endpoint.verify("PUT", uri, wrong, CREDENTIALS,
                              body=lambda: b"data") == s3_endpoint.MISMATCH  # fmt: skip
    assert s3_endpoint.verify("DELETE", uri, headers, CREDENTIALS) == s3_endpoint.MISMATCH
    assert s3_endpoint.verify("PUT", uri, [("Host", HOST)], CREDENTIALS) == s3_endpoint.MISSING
    assert s3_endpoint.verify("PUT", uri, headers, {"AKIAOTHER": SECRET}) == (
        s3_endpoint.UNKNOWN_KEY
    )
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=20)
    assert s3_endpoint.verify("PUT", uri, headers, CREDENTIALS, body=lambda: b"data",
                              now=later) == s3_endpoint.SKEWED  # fmt: skip

    presigned = _presign("GET", "/bucket/a b+c/ü.txt", expires=60)
    host = [("Host", HOST)]
    assert isinstance(s3_endpoint.verify("GET", presigned, host, CREDENTIALS),
                      s3_endpoint.Verified)  # fmt: skip
    assert s3_endpoint.verify("PUT", presigned, host, CREDENTIALS) == s3_endpoint.MISMATCH
    assert s3_endpoint.verify("GET", presigned.replace("bucket", "other"), host,
                              CREDENTIALS) == s3_endpoint.MISMATCH  # fmt: skip
    assert s3_endpoint.verify("GET", presigned, [("Host", "evil:1")], CREDENTIALS) == (
        s3_endpoint.MISMATCH
    )
    expired = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=61)
    assert s3_endpoint.verify("GET", presigned, host, CREDENTIALS, now=expired) == (
        s3_endpoint.EXPIRED
    )
    # Signature Version 2 (what boto3 presigns with by default for us-east-1) is not served.
    assert (
        s3_endpoint.verify(
            "GET", "/bucket/k?AWSAccessKeyId=AKIA&Signature=x&Expires=9999999999", host, CREDENTIALS
        )
        == s3_endpoint.MISSING
    )
