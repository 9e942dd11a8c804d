"""Real sizes through a team API, in both auth modes, with MLflow's own client configured only
as the platform publishes (`client_environment`).

The local platform's team API (mlflow_platform/local/team_api.py) enforces API Gateway's HTTP
API quotas, which cannot be raised: 10 MB per request and response payload, 30 s per
integration, 10240 bytes of request line and headers ("Quotas for configuring and running an
HTTP API in API Gateway", API Gateway Developer Guide). Files of 0 B to 300 MiB and a pyfunc
model with a 150 MiB weights file go through it byte for byte, because the server (MLflow 3.18,
presigned-only) only signs S3 URLs and the client moves the bytes itself; the team API's log
shows how few bytes crossed it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from mlflow_platform.local import team_api
from mlflow_platform.local.platform import LocalPlatform
from mlflow_platform.paths import ROOT
from tracking_server import settings

MiB = 1024 * 1024
SIZES = (0, 1024, 9 * MiB, 25 * MiB, 300 * MiB)
WEIGHTS_MIB = 150


@pytest.fixture(scope="module", params=["basic", "iam"])
def team(request, platform):
    """The local platform in each mode, and the environment its team's clients get."""
    if request.param == "basic":
        local, details = platform
        yield local, details
        return
    state = Path(tempfile.mkdtemp(prefix="mlflow-local-iam-"))
    state.chmod(0o755)
    local = LocalPlatform(state, progress=lambda _: None)
    try:
        yield local, local.up(server_env={settings.AUTH_MODE: "iam"})
    finally:
        local.down()
        shutil.rmtree(state, ignore_errors=True)


def _client_env(details: dict, tmp_path: Path) -> dict[str, str]:
    """Nothing of this process's MLflow or AWS settings: only what the platform publishes."""
    kept = {k: v for k, v in os.environ.items()
            if not k.startswith(("MLFLOW_", "AWS_"))}  # fmt: skip
    return {
        **kept,
        **details["client_environment"],
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }


def _crossed(local) -> list[dict]:
    lines = (local.dir / "team-api.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_artifacts_of_every_size_round_trip_byte_for_byte(team, tmp_path):
    local, details = team
    before = len(_crossed(local))
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "real_sizes_client.py"), str(tmp_path),
         *map(str, SIZES)],
        env=_client_env(details, tmp_path), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    sent = result["sent"]
    assert result["downloaded"] == sent
    assert result["registered"] == sent
    assert result["listed"] == {f"sizes/{path}": size for path, (size, _) in sent.items()}
    crossed = _crossed(local)[before:]
    assert all(line["status"] < 400 for line in crossed), [c for c in crossed if c["status"] >= 400]
    moved = sum(size for size, _ in sent.values()) * 3  # up, down, down again from the registry
    through = sum(line["request_bytes"] + line["response_bytes"] for line in crossed)
    assert through < 2 * MiB and through < moved / 100, (through, moved)
    print(f"\n{details.get('auth_mode')}: {result['seconds']}, {through} bytes through the API")


def test_the_example_logs_registers_loads_and_predicts_a_model_with_big_weights(team, tmp_path):
    local, details = team
    before = len(_crossed(local))
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train.py"), "--experiment",
         f"weights-{details.get('auth_mode')}", "--model-name",
         f"weights-{details.get('auth_mode')}-{os.getpid()}", "--weights-mib", str(WEIGHTS_MIB),
         "--epochs", "5"],
        env=_client_env(details, tmp_path), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(result["weights_sha256"]) == 64
    assert result["registered_model_version"] == "1"
    assert isinstance(result["prediction"], float)
    through = sum(c["request_bytes"] + c["response_bytes"] for c in _crossed(local)[before:])
    assert through < WEIGHTS_MIB * MiB / 100, through


def test_the_team_api_refuses_what_api_gateway_refuses(team):
    """The quotas, with API Gateway's statuses, for a client that bypasses MLflow's client."""
    _, details = team
    url = details["team_api_uri"] + "/api/2.0/mlflow/experiments/search"
    too_large = requests.post(url, data=b"x" * (team_api.PAYLOAD_LIMIT + 1), timeout=60)
    assert (too_large.status_code, too_large.json()) == (413, {
        "message": "Request Entity Too Large"})  # fmt: skip
    headers = {f"X-Padding-{i}": "p" * 1000 for i in range(11)}
    too_long = requests.get(url, headers=headers, timeout=30)
    assert too_long.status_code == 431
    assert team_api.HEADER_LIMIT == 10240 and team_api.PAYLOAD_LIMIT == 10_000_000
    assert team_api.TIMEOUT_SECONDS == 30


def _raw(url: str, request: bytes) -> bytes:
    """One request as bytes on a socket, the answer's first line back."""
    import socket
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as connection:
        connection.sendall(request)
        return connection.recv(4096).split(b"\r\n", 1)[0]


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 2\r\nContent-Length: 28\r\n\r\n{}",
        b"Transfer-Encoding: chunked\r\n\r\n-1\r\n",
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"Content-Length: -5\r\n\r\n",
    ],
    ids=["two content lengths", "negative chunk", "chunk size not hex", "negative length"],
)
def test_framing_api_gateway_refuses_is_answered_400(team, framing):
    _, details = team
    line = _raw(
        details["team_api_uri"],
        b"POST /api/2.0/mlflow/experiments/search HTTP/1.1\r\nHost: x\r\n" + framing,
    )
    assert line == b"HTTP/1.1 400 Bad Request", line  # fmt: skip


def test_the_ui_served_by_the_local_team_api_may_post_and_no_other_page_may(team):
    """The team API's own pages (its origin is http:// on loopback, unlike a cloud team API's
    https://) are served; a page of another local port is refused."""
    _, details = team
    if details.get("auth_mode") != "basic":
        pytest.skip("a browser reaches an iam team API through invoke ui, which sends no Origin")
    env = details["client_environment"]
    auth = (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])
    url = details["team_api_uri"] + "/ajax-api/2.0/mlflow/experiments/search"
    own = requests.post(url, json={"max_results": 1}, auth=auth,
                        headers={"Origin": details["team_api_uri"]}, timeout=30)  # fmt: skip
    assert own.status_code == 200, own.text
    other = requests.post(url, json={"max_results": 1}, auth=auth,
                          headers={"Origin": "http://127.0.0.1:1"}, timeout=30)  # fmt: skip
    assert other.status_code == 403, other.text


def test_a_proxied_upload_is_refused_by_the_server_with_the_way_out(team, tmp_path):
    """An MLflow client that would send artifact bytes through the team API (older, without the
    published settings) is told what to do, rather than failing at 10 MB."""
    _, details = team
    env = _client_env(details, tmp_path)
    if details.get("auth_mode") != "basic":
        pytest.skip("the raw request needs a signature; the refusal is the server's, one mode")
    auth = (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])
    own = requests.post(env["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/experiments/create",
                        json={"name": f"proxied-{time.time_ns()}"}, auth=auth,
                        timeout=30).json()["experiment_id"]  # fmt: skip
    answer = requests.put(
        env["MLFLOW_TRACKING_URI"] + f"/api/2.0/mlflow-artifacts/artifacts/{own}/x/artifacts/a.txt",
        data=b"hello",
        auth=auth,
        timeout=30,
    )
    assert answer.status_code == 403, answer.text
    assert "uploaded directly to storage" in answer.json()["message"]


class _Slow:
    """A backend that answers after `delay` seconds, or with `size` bytes."""

    def __init__(self, *, delay: float = 0, size: int = 2) -> None:
        import http.server
        import threading
        import time

        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                time.sleep(outer.delay)
                self.send_response(200)
                self.send_header("Content-Length", str(outer.size))
                self.end_headers()
                with contextlib.suppress(OSError):  # the team API hangs up at its limit
                    self.wfile.write(b"x" * outer.size)

            def log_message(self, *args: object) -> None:
                pass

        self.delay, self.size = delay, size
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ({"delay": 2.0}, team_api.TIMED_OUT),
        ({"size": team_api.PAYLOAD_LIMIT + 1}, team_api.RESPONSE_TOO_LARGE),
    ],
    ids=["integration timeout", "response too large"],
)
def test_a_slow_or_oversized_answer_gets_api_gateways_status(backend, expected):
    slow = _Slow(**backend)
    hop = team_api.TeamApi(team_api.TeamApiConfig(
        auth_mode="basic", target_port=slow.port, host="lb.example", callers={}, timeout=1.0,
    )).serve_in_background()  # fmt: skip
    try:
        answer = requests.get(hop.url + "/x", timeout=30)
        assert (answer.status_code, answer.text) == expected
    finally:
        hop.close()
        slow.server.shutdown()
