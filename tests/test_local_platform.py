"""The real MLflow client against the real tracking server, as `invoke local` runs it:
PostgreSQL, an S3 endpoint, basic auth, all started through the cloud's entrypoint."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from mlflow.entities import Metric

from mlflow_platform.local.platform import LocalPlatform, LocalPlatformError
from tracking_server import settings as names

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _client(details, password=None, username=None):
    from mlflow import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"] = username or details["username"]
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password or details["password"]
    return MlflowClient(details["tracking_uri"])


def test_up_is_idempotent_and_status_says_what_runs(platform):
    local, details = platform
    before = local.status()
    assert {name: c["running"] for name, c in before.items()} == {
        "postgres": True,
        "s3": True,
        "server": True,
        "team-api": True,
    }
    assert local.up() == details
    assert local.status() == before  # nothing restarted


def test_tracking_round_trip(platform, tmp_path):
    _, details = platform
    client = _client(details)
    experiment = client.create_experiment(f"round-trip-{time.time_ns()}")
    run = client.create_run(experiment, tags={"team": "fraud"})
    run_id = run.info.run_id
    client.log_param(run_id, "alpha", "0.5")
    for step in range(5):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    client.set_tag(run_id, "stage", "candidate")
    small = tmp_path / "notes.txt"
    small.write_text("hello mlflow")
    large = tmp_path / "weights.bin"
    large.write_bytes(os.urandom(5 * 1024 * 1024 + 123))
    client.log_artifact(run_id, str(small))
    client.log_artifact(run_id, str(large), artifact_path="model")
    client.set_terminated(run_id)

    fetched = client.get_run(run_id)
    assert fetched.data.params == {"alpha": "0.5"}
    assert fetched.data.tags["team"] == "fraud" and fetched.data.tags["stage"] == "candidate"
    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, 1.0 / (s + 1)) for s in range(5)]
    out = Path(client.download_artifacts(run_id, "", str(tmp_path / "out")))
    assert (out / "notes.txt").read_text() == "hello mlflow"
    assert (out / "model" / "weights.bin").read_bytes() == large.read_bytes()

    name = f"model-{time.time_ns()}"
    client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
    assert client.get_model_version(name, version.version).run_id == run_id
    assert client.get_registered_model(name).name == name


@pytest.mark.parametrize("auth", [None, ("admin", "wrong-password-123")])
def test_missing_or_wrong_credentials_get_401_and_write_nothing(platform, auth):
    _, details = platform
    name = f"intruder-{time.time_ns()}"
    response = requests.post(
        f"{details['tracking_uri']}/api/2.0/mlflow/experiments/create",
        json={"name": name},
        auth=auth,
        timeout=30,
    )
    assert response.status_code == 401
    assert _client(details).get_experiment_by_name(name) is None


def test_four_concurrent_clients_lose_no_metric(platform):
    _, details = platform
    client = _client(details)
    experiment = client.create_experiment(f"concurrent-{time.time_ns()}")
    runs = [client.create_run(experiment).info.run_id for _ in range(4)]
    errors: list[BaseException] = []

    def log(run_id: str) -> None:

        try:
            for batch in range(10):
                metrics = [Metric("m", float(i), 0, batch * 100 + i) for i in range(100)]
                client.log_batch(run_id, metrics=metrics)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=log, args=(run_id,)) for run_id in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for run_id in runs:
        history = client.get_metric_history(run_id, "m")
        assert sorted(m.step for m in history) == list(range(1000))


def _log_until(client, run_id, steps, acknowledged, stop_after=None):
    for step in steps:
        try:
            client.log_metric(run_id, "ack", float(step), step=step)
        except Exception:
            continue
        acknowledged.append(step)


def test_acknowledged_metrics_survive_a_server_kill_and_a_database_restart(platform):
    local, details = platform
    client = _client(details)
    experiment = client.create_experiment(f"restarts-{time.time_ns()}")
    run_id = client.create_run(experiment).info.run_id
    acknowledged: list[int] = []

    _log_until(client, run_id, range(0, 20), acknowledged)
    server_pid = local.status()["server"]["pid"]
    os.killpg(server_pid, signal.SIGKILL)  # the whole server, no graceful shutdown
    _log_until(client, run_id, range(20, 25), acknowledged)  # refused while down
    local.up()
    assert local.status()["server"]["pid"] != server_pid
    _log_until(client, run_id, range(25, 45), acknowledged)

    local.down(("postgres",))
    _log_until(client, run_id, range(45, 50), acknowledged)
    local.up()
    _log_until(client, run_id, range(50, 70), acknowledged)

    stored = sorted(m.step for m in client.get_metric_history(run_id, "ack"))
    assert stored == sorted(acknowledged)
    assert set(range(0, 20)) | set(range(25, 45)) | set(range(51, 70)) <= set(stored)


def test_embedded_mode_uses_the_same_entrypoint(tmp_path):
    local = LocalPlatform(tmp_path, progress=lambda _: None)
    try:
        details = local.up(embedded=True)
        assert details["embedded"] is True and details["s3_endpoint"] is None
        client = _client(details)
        experiment = client.create_experiment("embedded")
        run_id = client.create_run(experiment).info.run_id
        client.log_metric(run_id, "m", 1.0)
        assert client.get_run(run_id).data.metrics == {"m": 1.0}
        assert (tmp_path / "embedded" / "mlflow.db").exists()
        assert requests.get(f"{details['tracking_uri']}/api/2.0/mlflow/experiments/search",
                            timeout=10).status_code == 401  # fmt: skip
    finally:
        assert set(local.down()) == {"server"}


def test_iam_mode_keeps_mlflows_users_and_takes_the_caller_from_api_gateway(tmp_path):
    """In `iam` mode API Gateway checks signatures and names the caller in a header; the
    server runs the platform's auth app and acts as the user that caller maps to
    (test_iam_mode.py has the teams)."""
    admin_role = "arn:aws:iam::123456789012:role/MlflowAdmins"
    local = LocalPlatform(tmp_path, progress=lambda _: None)
    try:
        details = local.up(
            embedded=True,
            server_env={names.AUTH_MODE: "iam", names.ADMIN_PRINCIPALS: admin_role},
        )
        uri = details["tracking_uri"]
        refused = requests.post(f"{uri}/api/2.0/mlflow/experiments/create",
                                json={"name": "iam"}, timeout=30)  # fmt: skip
        assert refused.status_code == 401
        caller = "arn:aws:sts::123456789012:assumed-role/MlflowAdmins/session"
        created = requests.post(f"{uri}/api/2.0/mlflow/experiments/create", json={"name": "iam"},
                                headers={names.CALLER_HEADER: caller}, timeout=30)  # fmt: skip
        assert created.status_code == 200, created.text
        port = uri.rsplit(":", 1)[1]
        assert "tracking_server.app:create_basic_auth_app" in _server_worker_command(port)
    finally:
        assert set(local.down()) == {"server"}


def _server_worker_command(port: str) -> str:
    """The command line of the uvicorn process serving this port."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().decode().split("\0")
        except OSError:  # the process ended while we looked
            continue
        if "uvicorn" in argv and port in argv:
            return " ".join(argv)
    raise AssertionError(f"no uvicorn process serves port {port}")


def test_the_server_runs_the_platforms_basic_auth_app(platform):
    _, details = platform
    port = details["tracking_uri"].rsplit(":", 1)[1]
    assert "tracking_server.app:create_basic_auth_app" in _server_worker_command(port)


def test_the_server_runs_without_mlflows_job_runners(platform):
    """One server process and its worker: no job-runner processes beside them."""
    local, _ = platform
    server = local.status()["server"]
    assert server["running"]
    runners = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"huey_consumer" in cmdline.read_bytes():
                runners.append(cmdline.parent.name)
        except OSError:  # the process ended while we looked
            continue
    assert runners == []


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name; None when gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields


def _in_session(session: int) -> list[int]:
    """The live processes of a session (a server `up` starts leads its own)."""
    members = []
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat(int(entry.name))
        if fields and int(fields[3]) == session:
            members.append(int(entry.name))
    return members


def _serving(port: int) -> list[int]:
    """The live uvicorn processes started for this port."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().decode().split("\0")
        except OSError:
            continue
        if "uvicorn" in argv and str(port) in argv and _stat(int(cmdline.parent.name)):
            found.append(int(cmdline.parent.name))
    return found


def _orphan_the_worker(leader: int, port: int, uri: str) -> int:
    """SIGKILL the server's parent process; its uvicorn process lives on, still serving."""
    (worker,) = _serving(port)
    assert int(_stat(worker)[1]) == leader
    os.kill(leader, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _stat(leader) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _stat(leader) is None and _stat(worker) is not None
    assert requests.get(f"{uri}/health", timeout=10).status_code == 200
    return worker


def test_a_server_whose_parent_died_is_replaced_by_up_and_stopped_whole_by_down(tmp_path):
    local = LocalPlatform(tmp_path, progress=lambda _: None)
    try:
        details = local.up(embedded=True)
        uri = details["tracking_uri"]
        port = int(uri.rsplit(":", 1)[1])
        first = local.status()["server"]["pid"]
        orphan = _orphan_the_worker(first, port, uri)
        assert local.status()["server"]["running"] is False

        assert local.up(embedded=True) == details
        second = local.status()["server"]["pid"]
        assert second != first and local.status()["server"]["running"]
        assert _stat(orphan) is None  # stopped, not left beside the new server
        assert _in_session(first) == []
        (worker,) = _serving(port)  # one server on the port: the new one
        assert int(_stat(worker)[3]) == second

        orphan = _orphan_the_worker(second, port, uri)
        assert local.down() == ["server"]
        assert _stat(orphan) is None
        assert _in_session(second) == [] and _serving(port) == []
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
        assert local.down() == []  # nothing left to stop
    finally:
        local.down()


def test_up_refuses_a_port_someone_else_listens_on_and_names_them(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        (tmp_path / "state.json").write_text(
            json.dumps({"embedded": True, "server": {"port": port}})
        )
        local = LocalPlatform(tmp_path, progress=lambda _: None)
        with pytest.raises(LocalPlatformError) as refused:
            local.up(embedded=True)
        assert f"127.0.0.1:{port}" in str(refused.value)
        assert f"pid {os.getpid()}" in str(refused.value)
        assert local.status()["server"]["running"] is False
        assert not (tmp_path / "server.log").exists()  # no server was started


def test_the_role_is_set_up_first_and_the_server_never_gets_the_master_user(platform, monkeypatch):
    """As the task runs it: the set-up alone gets the master user and exits 0, then the server
    starts without it (in the cloud the container's configured environment, which health checks
    and /proc/<pid>/environ show, so it must never be there)."""
    local, _ = platform
    spawned: list[tuple[list[str], dict[str, str]]] = []
    spawn = LocalPlatform._spawn

    def recording(self, argv, *, log, env):
        spawned.append((list(argv), dict(env)))
        return spawn(self, argv, log=log, env=env)

    local.down(("server",))
    monkeypatch.setattr(LocalPlatform, "_spawn", recording)
    try:
        local.up()
    finally:
        monkeypatch.undo()
    master_password = local._credentials().db_password
    [(setup_argv, setup_env), (server_argv, server_env)] = spawned
    assert setup_argv[-2:] == ["tracking_server.entrypoint", names.SETUP_DATABASE]
    assert server_argv[-1] == "tracking_server.entrypoint"
    assert setup_env[names.DB_MASTER_PASSWORD] == master_password
    assert names.DB_MASTER_USERNAME not in server_env
    assert names.DB_MASTER_PASSWORD not in server_env
    assert master_password not in "\0".join(server_env.values())
    assert server_env[names.DB_USERNAME] == names.SERVER_DB_ROLE
    # Nor is it in any process of the running server.
    for pid in local._processes("server", local._state()["server"]["pid"]):
        assert master_password.encode() not in Path(f"/proc/{pid}/environ").read_bytes(), pid
    log = (local.dir / "server.log").read_text(errors="replace")
    set_up, started = log.rfind("tracking-server: database set up"), log.rfind("starting mlflow")
    assert 0 <= set_up < started


def test_the_server_runs_the_pinned_mlflow_and_says_so(platform):
    """`/version` answers the MLflow version requirements.txt pins (the image installs the same
    file), through the team API as a client reaches it."""
    from mlflow_platform.paths import ROOT

    _, details = platform
    pins = (ROOT / "src" / "tracking_server" / "requirements.txt").read_text().splitlines()
    [pin] = [line.split("==", 1)[1] for line in pins if line.startswith("mlflow[auth]==")]
    environment = details["client_environment"]
    team = (environment["MLFLOW_TRACKING_USERNAME"], environment["MLFLOW_TRACKING_PASSWORD"])
    answer = requests.get(f"{details['team_api_uri']}/version", auth=team, timeout=30)
    assert (answer.status_code, answer.text) == (200, pin)
    assert pin == "3.18.0"


def test_eval_of_invoke_local_up_configures_a_shell():
    """`eval "$(invoke local up)"`, as the examples say: stdout is `export` lines only, progress
    goes to stderr, and the shell then reaches the team API as the local team."""
    import shutil
    import tempfile

    from mlflow_platform.paths import ROOT

    state = Path(tempfile.mkdtemp(prefix="mlflow-local-eval-"))
    state.chmod(0o755)  # PostgreSQL's user must reach its data directory under it
    probe = (
        "import os, requests; print(requests.get(os.environ['MLFLOW_TRACKING_URI'] + "
        "'/api/2.0/mlflow/experiments/search', params={'max_results': 1}, timeout=30, auth=("
        "os.environ['MLFLOW_TRACKING_USERNAME'], os.environ['MLFLOW_TRACKING_PASSWORD']))"
        ".status_code, end='')"
    )
    script = (
        f'exports="$({sys.executable} -m invoke local up --state-dir {state})" && '
        f'eval "$exports" && {sys.executable} -c "{probe}"'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    try:
        done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout == "200", (done.stdout, done.stderr[-2000:])
        assert "starting the tracking server" in done.stderr
    finally:
        LocalPlatform(state, progress=lambda _: None).down()
        shutil.rmtree(state, ignore_errors=True)
