"""Moving the tracking server from MLflow 3.17.2 to 3.18.0: a database with 3.17.2's schema and
data, migrated by two new tasks at once, everything intact; afterwards an old server refuses.

On a private PostgreSQL set up as the local platform sets it up (a master user that is no
superuser, the server's own role, verified TLS) and moto's S3:

- MLflow 3.17.2, in its own virtual environment (`.venv-mlflow-previous`, which `.ci/run`
  creates), runs the platform's entrypoint (this tree's `tracking_server`, unchanged in what it
  does since the 3.17.2 image: init container, then the server) and its client writes real
  data: experiments, runs with params, metrics and tags, an artifact, a registered model with
  versions, a tag and an alias, a logged model, a trace, users and per-experiment and
  per-model grants in the auth database.
- Two 3.18 tasks (init container, then the server) start at the same moment while the 3.17.2
  server still runs, as in an ECS rolling deployment: both serve, exactly one migrated, the
  alembic revision is 3.18's head, and every row of every table (its columns as 3.17.2 had
  them) and every permission is what it was, through SQL and through 3.18's API.
- The 3.17.2 server that was already running keeps serving what it does on the new schema.
- A 3.17.2 server that starts now refuses: stock `mlflow server` (MLflow's schema check) and
  `mlflow db upgrade` (what the 3.17.2 image's entrypoint ran: `_upgrade_db`) fail and change
  nothing. This entrypoint refuses a revision its MLflow does not know with one line naming
  both revisions, on 3.17.2 against 3.18's schema and on 3.18 against a stamped unknown one.

Without `.venv-mlflow-previous` these tests skip, saying how to make it, unless
MLFLOW_PLATFORM_REQUIRE_PREVIOUS_MLFLOW is set (as CI sets it), when they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from psycopg2 import sql

from mlflow_platform.local.platform import ADMIN, Credentials, LocalPlatform
from mlflow_platform.paths import ROOT
from tracking_server import settings as names

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PREVIOUS = "3.17.2"
PREVIOUS_VENV = ROOT / ".venv-mlflow-previous"
PREVIOUS_PYTHON = PREVIOUS_VENV / "bin" / "python"
REQUIRE = "MLFLOW_PLATFORM_REQUIRE_PREVIOUS_MLFLOW"
SOURCE = ROOT / "src"
START_TIMEOUT = 180
ALEMBIC_TABLES = ("alembic_version", "alembic_version_auth")
# Tables the 3.17.2 data must have filled; an empty one would make "intact" prove nothing.
FILLED = {
    "mlflow": ("experiments", "experiment_tags", "runs", "params", "tags", "metrics",
               "latest_metrics", "registered_models", "registered_model_tags",
               "model_versions", "model_version_tags", "registered_model_aliases",
               "logged_models", "logged_model_params", "trace_info"),
    "mlflow_auth": ("users",),
}  # fmt: skip


def _previous_python() -> Path:
    if PREVIOUS_PYTHON.is_file():
        return PREVIOUS_PYTHON
    message = (
        f"MLflow {PREVIOUS} is not installed at {PREVIOUS_VENV.relative_to(ROOT)}; create it "
        f"with `python3 -m venv {PREVIOUS_VENV.name} && {PREVIOUS_VENV.name}/bin/pip install "
        f"'mlflow[auth]=={PREVIOUS}' psycopg2-binary==2.9.13 'boto3>=1.35,<2'`"
    )
    if os.environ.get(REQUIRE):
        pytest.fail(f"{message} ({REQUIRE} is set)")
    pytest.skip(message)


def _heads() -> tuple[str, str, list[str]]:
    """(3.17.2's head, 3.18's head, 3.18's revisions newer than 3.17.2's head, newest first),
    each from its own MLflow's migration scripts."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    probe = subprocess.run(
        [str(_previous_python()), "-c",
         "import json, mlflow; from mlflow.store.db.utils import _get_latest_schema_revision"
         " as head; print(json.dumps([mlflow.__version__, head()]))"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    version, old_head = json.loads(probe.stdout)
    assert version == PREVIOUS, f"{PREVIOUS_VENV} has MLflow {version}, not {PREVIOUS}"
    scripts = ScriptDirectory.from_config(_get_alembic_config(db_url=""))
    new_head = scripts.get_current_head()
    assert new_head is not None
    newer = [s.revision for s in scripts.iterate_revisions(new_head, old_head)]
    return old_head, new_head, newer


def _metadata_dir(directory: Path) -> Path:
    """The entry points through which MLflow finds the platform's store and app, as the image
    installs them (src/tracking_server/pyproject.toml), for the previous MLflow's environment;
    the code itself comes from src/ on PYTHONPATH, so nothing is built in the tree."""
    project = tomllib.loads((SOURCE / "tracking_server" / "pyproject.toml").read_text())["project"]
    info = directory / "mlflow_platform_tracking_server-1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    groups = project["entry-points"]
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()) + "\n"
            for group, points in groups.items()
        )
    )
    return directory


def _healthy(port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{port}{names.HEALTH_PATH}"
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Task:
    """One ECS task of the tracking service: the init container, then the server."""

    name: str
    python: Path
    port: int
    log: Path
    server: subprocess.Popen | None = None
    setup_code: int | None = None
    started: float = 0.0

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class World:
    local: LocalPlatform
    state: dict
    credentials: Credentials
    python_path: str
    directory: Path
    old_head: str
    new_head: str
    newer: list[str]
    tasks: list[Task] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    before: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    after: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    migrated_in: float = 0.0

    def env(self, python: Path, port: int, *, master: bool) -> dict[str, str]:
        """The settings the task definition passes; the master user's only to the init
        container. The previous MLflow finds the platform's code in src/."""
        env = self.local.server_environment({**self.state, "server": {"port": port}},
                                            self.credentials)  # fmt: skip
        env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        if python != Path(sys.executable):
            env["PYTHONPATH"] = self.python_path
        if not master:
            for name in (names.DB_MASTER_USERNAME, names.DB_MASTER_PASSWORD):
                env.pop(name)
        return env

    def start(self, name: str, python: Path) -> Task:
        """An ECS task: the init container to completion, then the server (not awaited)."""
        task = Task(name, python, _free_port(), self.directory / f"{name}.log")
        self.tasks.append(task)
        task.started = time.monotonic()
        entrypoint = [str(python), "-m", "tracking_server.entrypoint"]
        with open(task.log, "ab") as out:
            setup = subprocess.run(
                [*entrypoint, names.SETUP_DATABASE], stdout=out, stderr=subprocess.STDOUT,
                env=self.env(python, task.port, master=True), timeout=300,
            )  # fmt: skip
            task.setup_code = setup.returncode
            if setup.returncode == 0:
                task.server = subprocess.Popen(
                    entrypoint, stdout=out, stderr=subprocess.STDOUT,
                    env=self.env(python, task.port, master=False), start_new_session=True,
                )  # fmt: skip
        return task

    def wait_healthy(self, task: Task) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not _healthy(task.port):
            assert task.setup_code == 0, f"{task.name}: set-up failed:\n{task.text()[-3000:]}"
            assert task.server is not None and task.server.poll() is None, (
                f"{task.name} exited:\n{task.text()[-3000:]}"
            )
            assert time.monotonic() < deadline, f"{task.name} not healthy:\n{task.text()[-3000:]}"
            time.sleep(0.2)

    def stop(self, task: Task) -> None:
        if task.server is None or task.server.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(task.server.pid, signal.SIGTERM)
        try:
            task.server.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(task.server.pid, signal.SIGKILL)
            task.server.wait(10)

    def task(self, name: str) -> Task:
        [task] = [t for t in self.tasks if t.name == name]
        return task

    def new_tasks(self) -> list[Task]:
        return [t for t in self.tasks if t.name.startswith("new-")]

    def url(self, task: Task) -> str:
        return f"http://127.0.0.1:{task.port}"


def _snapshot(local: LocalPlatform, database: str) -> dict[str, list[str]]:
    """Every row of every table in `public`, as JSON objects keyed by column."""
    rows: dict[str, list[str]] = {}
    with contextlib.closing(local.superuser(database)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = sorted(name for (name,) in cursor.fetchall())
        for table in tables:
            cursor.execute(
                sql.SQL("SELECT to_jsonb(t)::text FROM {} t").format(sql.Identifier(table))
            )
            rows[table] = [text for (text,) in cursor.fetchall()]
        cursor.execute(
            "SELECT table_name, string_agg(column_name, ',' ORDER BY column_name) "
            "FROM information_schema.columns WHERE table_schema = 'public' GROUP BY 1"
        )
        rows["(columns)"] = sorted(f"{t}:{c}" for t, c in cursor.fetchall())
    return rows


def _columns(snapshot: dict[str, list[str]]) -> dict[str, list[str]]:
    return {
        entry.split(":", 1)[0]: entry.split(":", 1)[1].split(",") for entry in snapshot["(columns)"]
    }


def _projected(rows: list[str], columns: list[str]) -> list[str]:
    """Rows cut down to `columns` (the table as the older schema had it), in a stable order."""
    cut = []
    for text in rows:
        row = json.loads(text)
        cut.append(json.dumps({c: row[c] for c in columns}, sort_keys=True))
    return sorted(cut)


def _alembic(local: LocalPlatform, database: str, table: str) -> list[str]:
    with contextlib.closing(local.superuser(database)) as connection, connection.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT version_num FROM {}").format(sql.Identifier(table)))
        return [version for (version,) in cursor.fetchall()]


# Runs in MLflow 3.17.2's environment, with its client, against its server.
WRITE_DATA = r"""
import json, os
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.server import get_app_client

uri = os.environ["MLFLOW_TRACKING_URI"]
users = json.loads(os.environ["USERS"])

def as_user(name):
    os.environ["MLFLOW_TRACKING_USERNAME"] = name
    os.environ["MLFLOW_TRACKING_PASSWORD"] = users[name]
    return MlflowClient(uri)

as_user("admin")
auth = get_app_client("basic-auth", tracking_uri=uri)
for name in ("alice", "bob"):
    auth.create_user(name, users[name])

client = as_user("alice")
exp_a = client.create_experiment("migration-a", tags={"team": "a"})
runs = []
for i in range(2):
    run_id = client.create_run(exp_a, run_name=f"train-{i}", tags={"stage": "train"}).info.run_id
    client.log_param(run_id, "lr", str(0.1 * (i + 1)))
    client.log_batch(
        run_id,
        metrics=[Metric("loss", 1.0 / (s + 1) + i, 1_700_000_000_000 + s, s) for s in range(25)],
        params=[Param("layers", str(3 + i))],
        tags=[RunTag("data", f"v{i}")],
    )
    client.log_metric(run_id, "accuracy", 0.5 + i / 10)
    client.log_text(run_id, f"notes of run {i}", "notes/readme.txt")
    client.set_terminated(run_id)
    runs.append(run_id)
client.create_registered_model("model-a", tags={"owner": "alice"}, description="3.17.2 model")
for run_id in runs:
    client.create_model_version("model-a", f"runs:/{run_id}/model", run_id=run_id)
client.set_model_version_tag("model-a", "1", "validated", "yes")
client.set_registered_model_alias("model-a", "champion", "2")
logged = client.create_logged_model(exp_a, name="logged-a", params={"alpha": "0.5"},
                                    tags={"kind": "sklearn"})
mlflow.set_tracking_uri(uri)
mlflow.set_experiment(experiment_id=exp_a)
with mlflow.start_span("predict") as span:
    span.set_inputs({"x": 1})
    span.set_outputs({"y": 2})
trace_id = mlflow.get_last_active_trace_id()

client = as_user("bob")
exp_b = client.create_experiment("migration-b")
run_b = client.create_run(exp_b).info.run_id
client.log_metric(run_b, "loss", 0.25)

as_user("admin")
auth.grant_user_permission("bob", "experiment", exp_a, "READ")
auth.grant_user_permission("bob", "registered_model", "model-a", "READ")
print(json.dumps({"exp_a": exp_a, "exp_b": exp_b, "runs": runs, "run_b": run_b,
                  "logged_model": logged.model_id, "trace_id": trace_id}))
"""


@contextlib.contextmanager
def _as(world: World, user: str) -> Iterator[None]:
    """The MLflow client's credentials, as a person sets them."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"] = user
    os.environ["MLFLOW_TRACKING_PASSWORD"] = world.users[user]
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """3.17.2's schema and data, then two 3.18 tasks at once beside the running 3.17.2 one."""
    old_head, new_head, newer = _heads()
    directory = Path(tempfile.mkdtemp(prefix="mlflow-migration-"))
    directory.chmod(0o755)  # the postgres user reaches its data directory below it
    local = LocalPlatform(directory / "platform", progress=lambda _: None)
    credentials = local._credentials()
    state: dict = {"embedded": False}
    world = World(
        local=local, state=state, credentials=credentials,
        python_path=f"{_metadata_dir(directory / 'metadata')}{os.pathsep}{SOURCE}",
        directory=directory, old_head=old_head, new_head=new_head, newer=newer,
    )  # fmt: skip
    world.users = {ADMIN: credentials.admin_password, "alice": secrets.token_urlsafe(12),
                   "bob": secrets.token_urlsafe(12)}  # fmt: skip
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "30"
    try:
        local._ensure_postgres(state, credentials)
        local._ensure_s3(state, credentials)
        # Two old tasks; the second answers nothing but health checks until after the
        # migration, as a task started just before a deployment does.
        idle = threading.Thread(target=world.start, args=("previous-idle", PREVIOUS_PYTHON))
        idle.start()
        previous = world.start("previous", PREVIOUS_PYTHON)
        idle.join(300)
        for task in world.tasks:
            world.wait_healthy(task)
        written = subprocess.run(
            [str(PREVIOUS_PYTHON), "-c", WRITE_DATA], capture_output=True, text=True,
            timeout=300, env={**world.env(PREVIOUS_PYTHON, previous.port, master=False),
                              "MLFLOW_TRACKING_URI": world.url(previous),
                              "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false",
                              "USERS": json.dumps(world.users)},
        )  # fmt: skip
        assert written.returncode == 0, written.stderr[-3000:]
        world.data = json.loads(written.stdout.strip().splitlines()[-1])
        world.before = {db: _snapshot(local, db) for db in FILLED}

        # Two tasks of the new version at the same moment, the old one still serving.
        begin = time.monotonic()
        threads = [
            threading.Thread(target=world.start, args=(f"new-{i}", Path(sys.executable)))
            for i in (1, 2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        for task in world.new_tasks():
            world.wait_healthy(task)
        world.migrated_in = time.monotonic() - begin
        world.after = {db: _snapshot(local, db) for db in FILLED}
        yield world
    finally:
        for task in world.tasks:
            world.stop(task)
        local.down()
        shutil.rmtree(directory, ignore_errors=True)


def test_3_18_has_three_new_revisions_and_the_data_filled_every_table(world: World):
    assert world.old_head != world.new_head
    assert len(world.newer) == 3, world.newer
    for database, tables in FILLED.items():
        for table in tables:
            assert world.before[database][table], f"{database}.{table} is empty"
    assert _alembic(world.local, "mlflow", "alembic_version") == [world.new_head]
    auth_tables = world.before["mlflow_auth"]
    permission_rows = sum(len(rows) for table, rows in auth_tables.items() if "permission" in table)
    assert permission_rows >= 2, sorted(auth_tables)


def test_two_new_tasks_at_once_both_serve_and_exactly_one_migrated(world: World):
    first, second = world.new_tasks()
    logs = [first.text(), second.text()]
    upgraded = f"tracking schema upgraded from revision {world.old_head} to {world.new_head}"
    current = f"tracking schema current at revision {world.new_head}"
    assert sorted(upgraded in log for log in logs) == [False, True], logs
    assert sorted(current in log for log in logs) == [False, True], logs
    for task in (first, second):
        assert _healthy(task.port)
        assert "Traceback" not in task.text(), task.text()[-3000:]
    assert world.before["mlflow"]["alembic_version"] == [
        json.dumps({"version_num": world.old_head})
    ]
    assert world.after["mlflow"]["alembic_version"] == [json.dumps({"version_num": world.new_head})]
    # The auth app has no new revision in 3.18: its version is the same before and after.
    assert (
        world.after["mlflow_auth"]["alembic_version_auth"]
        == (world.before["mlflow_auth"]["alembic_version_auth"])
    )
    print(f"two tasks: both healthy {world.migrated_in:.1f}s after they started")


def test_every_row_and_every_permission_is_intact(world: World):
    """Each table as 3.17.2 had it, row for row; 3.18 only adds tables and columns."""
    for database in FILLED:
        before, after = world.before[database], world.after[database]
        old_columns, new_columns = _columns(before), _columns(after)
        for table, columns in old_columns.items():
            assert set(columns) <= set(new_columns[table]), (database, table)
            if table in ALEMBIC_TABLES:
                continue
            assert _projected(after[table], columns) == _projected(before[table], columns), (
                f"{database}.{table} changed"
            )
        added = {t: sorted(set(new_columns[t]) - set(c)) for t, c in old_columns.items()}
        print(database, "new tables:", sorted(set(new_columns) - set(old_columns)),
              "new columns:", {t: c for t, c in added.items() if c})  # fmt: skip
    assert {"skills", "skill_versions", "issue_categories"} <= set(_columns(world.after["mlflow"]))


def test_the_data_and_the_grants_read_back_through_3_18(world: World):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    new = world.url(world.task("new-1"))
    data = world.data
    with _as(world, "alice"):
        client = MlflowClient(new)
        assert client.get_experiment(data["exp_a"]).tags["team"] == "a"
        for i, run_id in enumerate(data["runs"]):
            run = client.get_run(run_id)
            assert run.data.params == {"lr": str(0.1 * (i + 1)), "layers": str(3 + i)}
            assert run.data.tags["data"] == f"v{i}" and run.data.tags["stage"] == "train"
            assert run.data.metrics["accuracy"] == 0.5 + i / 10
            history = sorted(client.get_metric_history(run_id, "loss"), key=lambda m: m.step)
            assert [(m.step, m.value) for m in history] == [
                (s, 1.0 / (s + 1) + i) for s in range(25)
            ]
            assert [a.path for a in client.list_artifacts(run_id, "notes")] == ["notes/readme.txt"]
        champion = client.get_model_version_by_alias("model-a", "champion")
        assert (champion.version, champion.run_id) == ("2", data["runs"][1])
        assert client.get_model_version("model-a", "1").tags == {"validated": "yes"}
        assert client.get_registered_model("model-a").description == "3.17.2 model"
        logged = client.get_logged_model(data["logged_model"])
        assert logged.params == {"alpha": "0.5"} and logged.tags["kind"] == "sklearn"
        trace = client.get_trace(data["trace_id"])
        assert [span.name for span in trace.data.spans] == ["predict"]
        with pytest.raises(MlflowException, match="Permission denied"):
            client.get_experiment(data["exp_b"])  # bob's, never granted to alice
    with _as(world, "bob"):
        client = MlflowClient(new)
        assert client.get_run(data["runs"][0]).info.run_id == data["runs"][0]  # READ
        assert client.get_registered_model("model-a").name == "model-a"
        with pytest.raises(MlflowException, match="Permission denied"):
            client.set_tag(data["runs"][0], "by", "bob")  # READ is not EDIT
    with _as(world, ADMIN):
        auth = get_app_client("basic-auth", tracking_uri=new)
        for resource_type, resource in (("experiment", data["exp_a"]),
                                        ("registered_model", "model-a")):  # fmt: skip
            granted = auth.get_user_permission("bob", resource_type, resource)
            assert granted.permission == "READ", granted


def test_the_running_3_17_2_server_keeps_serving_on_the_new_schema(world: World):
    """An old task until ECS drains it: its store checked the schema when it was first used,
    before the migration, and the calls it makes work on 3.18's tables."""
    from mlflow import MlflowClient

    previous, new = world.task("previous"), world.task("new-2")
    assert previous.server is not None and previous.server.poll() is None
    with _as(world, "alice"):
        old = MlflowClient(world.url(previous))
        run_id = old.create_run(world.data["exp_a"], run_name="during-rollout").info.run_id
        old.log_metric(run_id, "loss", 0.125, step=1)
        old.log_param(run_id, "phase", "rollout")
        old.set_tag(run_id, "served_by", PREVIOUS)
        version = old.create_model_version("model-a", f"runs:/{run_id}/model", run_id=run_id)
        old.set_registered_model_alias("model-a", "rollout", version.version)
        found = old.search_runs([world.data["exp_a"]], "params.phase = 'rollout'")
        assert [r.info.run_id for r in found] == [run_id]
        check = MlflowClient(world.url(new))
        run = check.get_run(run_id)
        assert run.data.metrics == {"loss": 0.125} and run.data.tags["served_by"] == PREVIOUS
        assert check.get_model_version_by_alias("model-a", "rollout").run_id == run_id


def test_an_old_task_first_used_after_the_migration_fails_every_tracking_call(world: World):
    """The risk in a rolling deployment: MLflow 3.17.2's server process makes its tracking
    store on the first request, and the store refuses a schema that is not its head. An old
    task that served nothing but health checks before the migration answers every tracking
    call with an error until it is drained; nothing is written, and its health check passes."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    idle = world.task("previous-idle")
    assert idle.server is not None and idle.server.poll() is None
    refusal = (
        f"INTERNAL_ERROR: Detected out-of-date database schema (found version {world.new_head}, "
        f"but expected {world.old_head})"
    )
    with _as(world, "alice"):
        old = MlflowClient(world.url(idle))
        check = MlflowClient(world.url(world.task("new-1")))
        experiment = world.data["exp_a"]
        runs = {r.info.run_id for r in check.search_runs([experiment])}
        for call in (lambda: old.get_experiment(experiment),
                     lambda: old.create_run(experiment, run_name="lost"),
                     lambda: old.log_metric(world.data["runs"][0], "late", 1.0)):  # fmt: skip
            with pytest.raises(MlflowException) as refused:
                call()
            assert refusal in str(refused.value)
        assert {r.info.run_id for r in check.search_runs([experiment])} == runs
        assert "late" not in check.get_run(world.data["runs"][0]).data.metrics
    assert _healthy(idle.port)  # the load balancer keeps sending it requests


def _unchanged_by(world: World, argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run a process that must refuse; the databases must be exactly as before it."""
    before = {db: _snapshot(world.local, db) for db in FILLED}
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=START_TIMEOUT, env=env)
    print(f"{' '.join(argv[1:4])}: exit {result.returncode} after "
          f"{time.monotonic() - started:.1f}s")  # fmt: skip
    assert {db: _snapshot(world.local, db) for db in FILLED} == before
    return result.returncode, result.stdout + result.stderr


def test_a_3_17_2_server_started_now_refuses_and_changes_nothing(world: World):
    """What an old task does now: the 3.17.2 image's entrypoint ran `_upgrade_db` (the same as
    `mlflow db upgrade`), and `mlflow server` checks the schema as its store starts."""
    for task in world.tasks:
        if task.name.startswith("previous"):
            world.stop(task)  # drained
    uri = world.local.database().uri()
    env = world.env(PREVIOUS_PYTHON, _free_port(), master=False)
    code, output = _unchanged_by(
        world, [str(PREVIOUS_PYTHON), "-m", "mlflow", "db", "upgrade", uri], env
    )
    assert code != 0
    assert f"Can't locate revision identified by '{world.new_head}'" in output, output[-3000:]
    port = _free_port()
    code, output = _unchanged_by(
        world,
        [str(PREVIOUS_PYTHON), "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
         str(port), "--workers", "1"],
        {**env, "MLFLOW_BACKEND_STORE_URI": uri, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )  # fmt: skip
    assert code == 1 and not _healthy(port)
    assert (
        f"Detected out-of-date database schema (found version {world.new_head}, "
        f"but expected {world.old_head})"
    ) in output, output[-3000:]


def _stamp(world: World, revision: str) -> None:
    with contextlib.closing(world.local.superuser("mlflow")) as admin, admin.cursor() as cursor:
        cursor.execute("UPDATE alembic_version SET version_num = %s", (revision,))


def test_the_entrypoint_refuses_a_revision_its_mlflow_does_not_know(world: World):
    """One line naming both revisions and what happened, from this entrypoint on 3.17.2
    against 3.18's schema (the next upgrade's old tasks), and on 3.18 against a revision
    stamped in for a release not yet made; the databases unchanged."""
    entrypoint = ["-m", "tracking_server.entrypoint"]
    code, output = _unchanged_by(
        world, [str(PREVIOUS_PYTHON), *entrypoint],
        world.env(PREVIOUS_PYTHON, _free_port(), master=False),
    )  # fmt: skip
    assert code == 1, output[-3000:]
    assert (
        f"tracking-server: refusing to start: the tracking database is at schema revision "
        f"{world.new_head}, which this image's MLflow {PREVIOUS} does not know (its newest is "
        f"{world.old_head}): a newer platform version migrated it"
    ) in output, output[-3000:]
    assert "Traceback" not in output

    unknown = "0123456789ab"
    _stamp(world, unknown)
    try:
        code, output = _unchanged_by(
            world, [sys.executable, *entrypoint],
            world.env(Path(sys.executable), _free_port(), master=False),
        )  # fmt: skip
    finally:
        _stamp(world, world.new_head)
    assert code == 1, output[-3000:]
    import mlflow

    assert (
        f"the tracking database is at schema revision {unknown}, which this image's MLflow "
        f"{mlflow.__version__} does not know (its newest is {world.new_head})"
    ) in output, output[-3000:]
    assert "Traceback" not in output


def test_the_ci_creates_the_previous_mlflow_and_requires_it():
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"python3 -m venv {PREVIOUS_VENV.name}" in ci
    assert f'"mlflow[auth]=={PREVIOUS}"' in ci
    assert f"export {REQUIRE}=1" in ci
