"""client/ (mlflow-platform-client): MLflow's requests signed for a team API in `iam` mode.

Every signature is checked on the receiving side by tests/sigv4_gateway.py's `verify`, which
recomputes it with botocore's own signer, as API Gateway does (API Gateway Developer Guide,
"Control access to an HTTP API with IAM authorization"); the stand-in here also holds the
signature to the API's own region, as API Gateway does.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import test_iam_mode
from mlflow_platform_client import (
    BUFFER_LIMIT,
    NAME,
    BodyError,
    CredentialSource,
    RegionError,
    SigningError,
    SigV4ExecuteApiAuth,
    region_for,
)
from mlflow_platform_client.provider import SigV4AuthProvider
from sigv4_gateway import Caller, verify
from test_iam_mode import TEAM_A_KEY, TEAM_B_KEY, TEAMS, _session

from mlflow_platform.signing_proxy import Answer, LoopbackServer

# The iam-mode platform and the team API stand-in in front of it (module-scoped fixtures).
iam, gateway = test_iam_mode.iam, test_iam_mode.gateway
monkeypatch_module = test_iam_mode.monkeypatch_module

API_REGION = "us-east-1"
STATIC = ("AKIAEXAMPLECLIENT001", "client-secret-one")
ROTATED = ("AKIAEXAMPLECLIENT002", "client-secret-two")
TEMPORARY = ("ASIAEXAMPLECLIENT003", "client-secret-three")
CALLERS = {
    key: Caller(secret, f"arn:aws:iam::123456789012:user/{key}")
    for key, secret in (STATIC, ROTATED, TEMPORARY)
}
_SCOPE = re.compile(r"(Credential=[^/]+/\d{8}/)([a-z0-9-]+)(/)")


class Api(LoopbackServer):
    """A team API in API_REGION that answers what it verified: the signing key, the body's
    SHA-256 and length, the query as a server decodes it, and the headers it received."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        super().__init__(self.answer)
        self.serve_in_background()

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        self.received.append(headers)
        url = f"http://{headers['Host']}{path}"
        checked = verify(method, url, _in_region(headers, API_REGION), body, CALLERS)
        if isinstance(checked, str):
            return 403, {"Content-Type": "application/json"}, checked.encode()
        query = urllib.parse.urlsplit(path).query
        seen = {
            "key": checked.user_arn.rsplit("/", 1)[-1],
            "sha256": hashlib.sha256(body).hexdigest(),
            "length": len(body),
            "query": urllib.parse.parse_qsl(query, keep_blank_values=True),
            "raw_query": query,
            "token": {k.lower(): v for k, v in headers.items()}.get("x-amz-security-token"),
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(seen).encode()


def _in_region(headers: dict[str, str], region: str) -> dict[str, str]:
    """The headers with the signature's scope set to `region`: API Gateway computes the
    signature for its own region, whatever region the client put in its scope."""
    return {
        k: _SCOPE.sub(rf"\g<1>{region}\g<3>", v) if k.lower() == "authorization" else v
        for k, v in headers.items()
    }


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    served = Api()
    yield served
    served.close()


@pytest.fixture
def aws(monkeypatch, tmp_path) -> Callable[..., None]:
    """botocore's default chain sees only what a test sets: no profile files, no metadata."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name.startswith("MLFLOW_"):
            monkeypatch.delenv(name)
    # Nor a tracking or registry URI an earlier test set in this process (mlflow.set_tracking_uri
    # keeps it beside the environment): the client signs only for MLflow's own URIs.
    monkeypatch.setattr("mlflow.tracking._tracking_service.utils._tracking_uri", None)
    monkeypatch.setattr("mlflow.tracking._model_registry.utils._registry_uri", None)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", API_REGION)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

    def use(key: tuple[str, str], token: str | None = None) -> None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key[0])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key[1])
        if token:
            monkeypatch.setenv("AWS_SESSION_TOKEN", token)

    return use


def _signed(method: str, url: str, *, auth: SigV4ExecuteApiAuth | None = None, **kwargs: Any):
    return requests.request(
        method, url, auth=auth or SigV4AuthProvider().get_auth(), timeout=60, **kwargs
    )


def test_mlflow_finds_the_plugin_by_its_entry_point(api, aws, monkeypatch):
    from importlib.metadata import entry_points

    from mlflow.tracking.request_auth.registry import fetch_auth
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    (found,) = [e for e in entry_points(group="mlflow.request_auth_provider") if e.name == NAME]
    assert found.value == "mlflow_platform_client.provider:SigV4AuthProvider"
    assert isinstance(fetch_auth(NAME), SigV4ExecuteApiAuth)
    # MLflow's own request path: MLFLOW_TRACKING_AUTH names the plugin, MLflow signs with it.
    aws(STATIC)
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", NAME)
    creds = get_default_host_creds(api.url)
    assert creds.auth == NAME
    response = http_request(creds, "/api/2.0/mlflow/experiments/search", "GET",
                            params={"max_results": 1})  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["key"] == STATIC[0]


def _generator() -> Iterator[bytes | str]:
    yield b"one "
    yield "two "
    yield b"three"


class _OneWay(io.RawIOBase):
    """A pipe-like binary stream: readable once, not seekable."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _file_at(tmp_path: Path, data: bytes, offset: int):
    path = tmp_path / "artifact.bin"
    path.write_bytes(data)
    opened = path.open("rb")
    opened.seek(offset)
    return opened


BINARY = bytes(range(256)) * 64
BODIES: dict[str, tuple[str, Callable[[Path], dict], bytes]] = {
    "bytes": ("POST", lambda _: {"data": BINARY}, BINARY),
    "str": ("POST", lambda _: {"data": "héllo wörld 日本"}, "héllo wörld 日本".encode()),
    "json": ("POST", lambda _: {"json": {"name": "é", "n": [1, 2]}},
             json.dumps({"name": "é", "n": [1, 2]}).encode()),
    "bytearray": ("PUT", lambda _: {"data": bytearray(b"array")}, b"array"),
    "empty POST": ("POST", lambda _: {}, b""),
    "GET": ("GET", lambda _: {}, b""),
    "generator": ("PUT", lambda _: {"data": _generator()}, b"one two three"),
    "file": ("PUT", lambda tmp: {"data": _file_at(tmp, BINARY, 1000)}, BINARY[1000:]),
    "BytesIO": ("PUT", lambda _: {"data": io.BytesIO(BINARY)}, BINARY),
    "unseekable stream": ("PUT", lambda _: {"data": _OneWay(BINARY)}, BINARY),
}  # fmt: skip


@pytest.mark.parametrize("kind", BODIES)
def test_every_kind_of_body_is_signed_as_sent(api, aws, tmp_path, kind):
    method, body, expected = BODIES[kind]
    aws(STATIC)
    response = _signed(method, f"{api.url}/api/2.0/mlflow-artifacts/artifacts/x", **body(tmp_path))
    assert response.status_code == 200, (kind, response.text)
    seen = response.json()
    assert (seen["sha256"], seen["length"]) == (hashlib.sha256(expected).hexdigest(), len(expected))


def test_a_50_mib_file_is_signed_by_streaming_it(api, aws, tmp_path):
    aws(STATIC)
    path = tmp_path / "model.bin"
    data = os.urandom(50 * 1024 * 1024)
    path.write_bytes(data)
    with path.open("rb") as opened:
        response = _signed("PUT", f"{api.url}/api/2.0/mlflow-artifacts/artifacts/big",
                           data=opened)  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert response.json()["length"] == len(data)


def test_a_query_with_repeated_and_special_characters(api, aws):
    aws(STATIC)
    params = [
        ("filter", "params.alpha = '0.5' AND tags.`x y` LIKE '%a+b%'"),
        ("run_id", "1"),
        ("run_id", "2"),
        ("odd", "é/?&=#;:@$,[]"),
        ("empty", ""),
        ("marks", "~-_.!*'()"),
    ]
    response = _signed("GET", f"{api.url}/api/2.0/mlflow/runs/search", params=params)
    assert response.status_code == 200, response.text
    seen = response.json()
    assert [tuple(pair) for pair in seen["query"]] == params
    # SigV4's canonical encoding on the wire, which API Gateway recomputes the same way.
    assert "+" not in seen["raw_query"] and "%20" in seen["raw_query"]
    assert "marks=~-_.%21%2A%27%28%29" in seen["raw_query"]


def test_temporary_credentials_sign_with_their_session_token(api, aws):
    aws(TEMPORARY, token="FwoGZXIvYXdzEXAMPLE//token+with/specials=")
    response = _signed("POST", f"{api.url}/api/2.0/mlflow/runs/create", json={"a": 1})
    assert response.status_code == 200, response.text
    assert response.json()["key"] == TEMPORARY[0]
    assert response.json()["token"] == "FwoGZXIvYXdzEXAMPLE//token+with/specials="


def test_a_tampered_request_or_another_region_is_refused(api, aws, monkeypatch):
    aws(TEMPORARY, token="the-session-token")
    session = requests.Session()
    url = f"{api.url}/api/2.0/mlflow-artifacts/artifacts/x"

    def prepared(data: bytes) -> requests.PreparedRequest:
        request = requests.Request("PUT", url, data=data, auth=SigV4AuthProvider().get_auth())
        return session.prepare_request(request)

    assert session.send(prepared(b"original body")).status_code == 200
    tampered = prepared(b"original body")
    tampered.body = b"tampered body"
    assert session.send(tampered).status_code == 403
    token = prepared(b"original body")
    token.headers["X-Amz-Security-Token"] = "another-token"
    assert session.send(token).status_code == 403
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    refused = session.send(prepared(b"original body"))
    assert refused.status_code == 403 and "does not match" in refused.text


def test_the_region_comes_from_the_url_else_the_settings(monkeypatch):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert region_for("https://a1b2c3.execute-api.eu-central-1.amazonaws.com/x") == "eu-central-1"
    assert region_for("https://a1b2c3.execute-api.cn-north-1.amazonaws.com.cn") == "cn-north-1"
    assert region_for("https://mlflow.example.com") == "us-east-1"
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert region_for("https://mlflow.example.com") == "ap-south-1"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert region_for("https://mlflow.example.com", configured=lambda: "sa-east-1") == "sa-east-1"
    with pytest.raises(RegionError, match="set AWS_REGION"):
        region_for("https://mlflow.example.com")


def test_a_rewritten_credentials_file_signs_the_next_request(api, aws, monkeypatch, tmp_path):
    credentials = tmp_path / "credentials"
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    provider = SigV4AuthProvider()  # one per process, as MLflow holds it
    keys = []
    for key, secret in (STATIC, ROTATED):
        credentials.write_text(
            f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
        )
        response = _signed("GET", f"{api.url}/health", auth=provider.get_auth())
        assert response.status_code == 200, response.text
        keys.append(response.json()["key"])
    assert keys == [STATIC[0], ROTATED[0]]


def test_refreshable_credentials_are_renewed_between_requests(api, aws, monkeypatch):
    """Expiring credentials from the environment (botocore re-reads it when they are due, as
    it re-asks a role or the container endpoint): a new key for the second request."""
    expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)  # noqa: UP017
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", expiry.isoformat())
    provider = SigV4AuthProvider()
    keys = []
    for key in (TEMPORARY, ROTATED):
        aws(key, token=f"token-of-{key[0]}")
        response = _signed("GET", f"{api.url}/health", auth=provider.get_auth())
        assert response.status_code == 200, response.text
        keys.append((response.json()["key"], response.json()["token"]))
    assert keys == [
        (TEMPORARY[0], f"token-of-{TEMPORARY[0]}"),
        (ROTATED[0], f"token-of-{ROTATED[0]}"),
    ]


def test_refreshable_credentials_are_kept_and_asked_each_time(api, aws):
    """The chain is resolved once for refreshable credentials (an instance or container role);
    each request then gets botocore's current frozen copy."""
    from botocore.credentials import RefreshableCredentials

    issued = iter([STATIC, ROTATED, TEMPORARY])  # each due for renewal when read
    resolved = []

    def refresh() -> dict:
        key, secret = next(issued)
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=30)  # noqa: UP017
        return {"access_key": key, "secret_key": secret, "token": None,
                "expiry_time": expiry.isoformat()}  # fmt: skip

    def resolve() -> RefreshableCredentials:
        resolved.append(1)
        return RefreshableCredentials.create_from_metadata(refresh(), refresh, "test-role")

    provider = SigV4AuthProvider(CredentialSource(resolve))
    keys = [
        _signed("GET", f"{api.url}/health", auth=provider.get_auth()).json()["key"]
        for _ in range(2)
    ]
    assert keys == [ROTATED[0], TEMPORARY[0]] and len(resolved) == 1


class _Recorder(LoopbackServer):
    """Another host: records what it receives; `redirect_to` makes it answer 307 instead."""

    def __init__(self, redirect_to: str | None = None, content: bytes = b"stored") -> None:
        self.received: list[dict[str, str]] = []
        self.redirect_to, self.content = redirect_to, content
        super().__init__(self.answer)
        self.serve_in_background()

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        self.received.append({k.lower(): v for k, v in headers.items()})
        if self.redirect_to:
            return 307, {"Location": self.redirect_to}, b""
        return 200, {"ETag": '"etag"', "Content-Type": "application/octet-stream"}, self.content


def _no_signature(headers: dict[str, str]) -> bool:
    return not {"authorization", "x-amz-date", "x-amz-security-token"} & set(headers)


def test_a_redirect_to_another_host_receives_no_signature(aws):
    aws(TEMPORARY, token="session-token")
    elsewhere = _Recorder()
    port = urllib.parse.urlsplit(elsewhere.url).port
    tracking = _Recorder(redirect_to=f"http://localhost:{port}/landing")
    try:
        response = _signed("PUT", f"{tracking.url}/api/2.0/mlflow-artifacts/artifacts/x",
                           data=b"body")  # fmt: skip
        assert response.status_code == 200
        assert not _no_signature(tracking.received[0])  # the tracking host got it signed
        assert elsewhere.received and _no_signature(elsewhere.received[0])
    finally:
        tracking.close()
        elsewhere.close()


def test_one_auth_signs_for_one_host_and_never_in_clear(api, aws):
    aws(STATIC)
    auth = SigV4AuthProvider().get_auth()
    assert _signed("GET", f"{api.url}/health", auth=auth).status_code == 200
    other = f"http://localhost:{urllib.parse.urlsplit(api.url).port}/health"
    with pytest.raises(SigningError, match="tracking URI's host"):
        _signed("GET", other, auth=auth)
    with pytest.raises(SigningError, match="in clear"):
        _signed("GET", "http://mlflow.example.com/health")


def test_an_artifact_uri_on_another_host_gets_no_signature(api, aws, monkeypatch, tmp_path):
    """MLflow hands the tracking auth to any http(s) URI it builds credentials for, an artifact
    URI a run or version names too: only the tracking and registry URIs' hosts may get it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    aws(TEMPORARY, token="session-token")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", api.url)
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", NAME)
    elsewhere = _Recorder()
    try:
        with pytest.raises((SigningError, MlflowException, requests.RequestException)):
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{elsewhere.url}/api/2.0/mlflow-artifacts/artifacts/x.txt",
                dst_path=str(tmp_path),
            )
        assert all(_no_signature(headers) for headers in elsewhere.received)
    finally:
        elsewhere.close()
    # The tracking URI's own host is still signed for.
    assert _signed("GET", f"{api.url}/health").status_code == 200


@pytest.mark.filterwarnings("ignore::requests.exceptions.FileModeWarning")
def test_bodies_it_refuses_say_why(aws, tmp_path):
    aws(STATIC)
    text = tmp_path / "notes.txt"
    text.write_text("text")
    with text.open() as opened, pytest.raises(BodyError, match=r"binary mode \('rb'\)"):
        _signed("PUT", "http://127.0.0.1:9/x", data=opened)
    chunks = (b"x" * (1024 * 1024) for _ in range(BUFFER_LIMIT // (1024 * 1024) + 1))
    with pytest.raises(BodyError, match="seekable binary file instead"):
        _signed("PUT", "http://127.0.0.1:9/x", data=chunks)


def test_mlflows_presigned_transfers_carry_no_signature(aws, monkeypatch, tmp_path):
    """MLflow 3.18 sends presigned S3 parts and downloads with plain requests, not with the
    tracking auth (mlflow/store/artifact/http_artifact_repo.py)."""
    from mlflow.entities.multipart_upload import MultipartUploadCredential
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository
    from mlflow.utils.file_utils import download_file_using_http_uri

    aws(TEMPORARY, token="session-token")
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", NAME)
    bucket = _Recorder()
    try:
        part = tmp_path / "part.bin"
        part.write_bytes(b"part")
        HttpArtifactRepository._upload_part(
            MultipartUploadCredential(url=f"{bucket.url}/bucket/key?X-Amz-Signature=s",
                                      part_number=1, headers={}),
            str(part), 4, 0,
        )  # fmt: skip
        download_file_using_http_uri(f"{bucket.url}/bucket/key", str(tmp_path / "got"))
        assert (tmp_path / "got").read_bytes() == b"stored"
        assert len(bucket.received) == 2 and all(map(_no_signature, bucket.received))
    finally:
        bucket.close()


def _team_env(gateway_url: str) -> dict[str, str]:
    """What a team's job sets: the two MLflow settings; its role's credentials in the chain."""
    return {
        "MLFLOW_TRACKING_URI": gateway_url,
        "MLFLOW_TRACKING_AUTH": NAME,
        "AWS_ACCESS_KEY_ID": TEAM_A_KEY,
        "AWS_SECRET_ACCESS_KEY": "team-a-secret-key",
        "AWS_REGION": API_REGION,
    }


def test_the_example_runs_as_a_team_with_the_client(iam, gateway, aws):
    """examples/train.py (params, metrics, an artifact, a registered model) through the team
    API stand-in, which refuses every request whose signature botocore does not confirm."""
    from test_examples import _check, _run_example

    before = len(gateway.forwarded)
    experiment, model = f"client-{time.time_ns()}", f"client-model-{time.time_ns()}"
    output = _run_example(_team_env(gateway.url), experiment, model)
    _check(iam, output, experiment, model)
    assert set(gateway.forwarded[before:]) == {_session(TEAMS["a"][0])}
    assert len(gateway.forwarded) - before > 10


def test_mlflows_client_acts_as_its_team_through_the_team_api(iam, gateway, aws, monkeypatch,
                                                              tmp_path):  # fmt: skip
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(None)  # no URI set in code (this also unsets the variable)
    for name, value in _team_env(gateway.url).items():
        monkeypatch.setenv(name, value)
    assert mlflow.get_tracking_uri() == gateway.url
    before = len(gateway.forwarded)
    artifact = tmp_path / "weights.bin"
    artifact.write_bytes(os.urandom(3 * 1024 * 1024))
    mlflow.set_experiment(f"client-fluent-{time.time_ns()}")
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", "0.5")
        mlflow.log_metric("loss", 0.25, step=1)
        mlflow.log_artifact(str(artifact))
    client = MlflowClient()
    assert client.get_run(run.info.run_id).data.params == {"alpha": "0.5"}
    local = client.download_artifacts(run.info.run_id, "weights.bin", str(tmp_path / "back"))
    assert Path(local).read_bytes() == artifact.read_bytes()
    # Every request reached the server as team A's role; team B, signing with its own key
    # through the same kind of API, is refused team A's run by the server.
    assert set(gateway.forwarded[before:]) == {_session(TEAMS["a"][0])}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEAM_B_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "team-b-secret-key")
    refused = requests.get(f"{gateway.url}/api/2.0/mlflow/runs/get",
                           params={"run_id": run.info.run_id},
                           auth=SigV4AuthProvider().get_auth(), timeout=30)  # fmt: skip
    assert refused.status_code == 403, refused.text
    assert gateway.forwarded[-1] == _session(TEAMS["b"][0])


def test_the_task_builds_a_wheel_that_installs_without_an_index(tmp_path):
    """`invoke client-wheel`, then what a job in a VPC without an index does with the file: a
    requirements.txt line naming it in source_dir, installed from that directory, no index."""
    import subprocess
    import sys

    from mlflow_platform.paths import ROOT

    done = subprocess.run(
        [str(Path(sys.executable).parent / "invoke"), "client-wheel", "--dist-dir",
         str(tmp_path / "dist"), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    wheel = Path(json.loads(done.stdout)["wheel"])
    assert wheel.parent == tmp_path / "dist" and wheel.name.endswith("-py3-none-any.whl")
    source_dir = tmp_path / "source_dir"
    source_dir.mkdir()
    (source_dir / wheel.name).write_bytes(wheel.read_bytes())
    (source_dir / "requirements.txt").write_text(f"./{wheel.name}\n")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    resolved = subprocess.run(
        [*pip, "install", "--quiet", "--no-index", "--dry-run", "--ignore-installed", "--no-deps",
         "--report", "-", "-r", "requirements.txt"],
        cwd=source_dir, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert resolved.returncode == 0, resolved.stderr
    (item,) = json.loads(resolved.stdout)["install"]
    assert item["metadata"]["name"] == "mlflow-platform-client"
    assert "mlflow-skinny>=2.15" in item["metadata"]["requires_dist"]
    # Installed from the file alone, MLflow's entry point group names the provider in it.
    target = tmp_path / "site"
    installed = subprocess.run(
        [*pip, "install", "--no-index", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    probe = (
        "from importlib.metadata import entry_points; import mlflow_platform_client as m; "
        "(e,) = [e for e in entry_points(group='mlflow.request_auth_provider') "
        f"if e.name == m.NAME and e.dist.locate_file('').as_posix() == {target.as_posix()!r}]; "
        "print(e.value, e.load().__module__, m.__file__)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    value, module, path = loaded.stdout.split()
    assert value == "mlflow_platform_client.provider:SigV4AuthProvider"
    assert module == "mlflow_platform_client.provider" and path.startswith(str(target))
