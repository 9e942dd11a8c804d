"""MLflow sees the server's backend store as the plain database URI it is, and still builds the
bulk store for it: the prompt-optimization job routes answer as a stock server's, and every
metric write of the platform's server is a COPY.

The stock server here is MLflow's own `mlflow server` from the same environment on the same
PostgreSQL, with the platform's entry points hidden from it (a sitecustomize on its path), so
that it builds MLflow's SqlAlchemyStore.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from publishing import free_port
from sqlalchemy.engine import make_url

from tracking_server import bulk_store, store_plugin, store_uri

_HIDE_PLATFORM_ENTRY_POINTS = """\
import importlib.metadata as metadata

_entry_points = metadata.entry_points


def entry_points(**params):
    found = _entry_points(**params)
    if str(params.get("group", "")).startswith("mlflow."):
        return metadata.EntryPoints(
            e for e in found if not e.value.startswith("tracking_server.")
        )
    return found


metadata.entry_points = entry_points
"""


def _server_environ(local) -> dict[str, str]:
    """The environment of a worker of the running platform server (a descendant of the process
    the entrypoint replaced with `mlflow server`) that has MLflow's server settings."""
    pending = [local._state()["server"]["pid"]]
    found: dict[str, str] = {}
    while pending:
        pid = pending.pop()
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        environ = dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
        if "_MLFLOW_SERVER_FILE_STORE" in environ:
            found = environ
        pending += [int(child) for child in children]
    assert found, "no process of the platform's server has MLflow's server settings"
    return found


def test_the_store_is_built_by_keyword_as_mlflow_builds_its_own(platform, tmp_path):
    """MLflow's parameter names (db_uri, default_artifact_root, read_db_uri) and order."""
    local, _ = platform
    plain = local.database_uri()
    assert list(inspect.signature(bulk_store.BulkSqlAlchemyStore).parameters) == list(
        inspect.signature(SqlAlchemyStore).parameters
    )
    by_keyword = bulk_store.BulkSqlAlchemyStore(
        db_uri=plain, default_artifact_root=str(tmp_path), read_db_uri=plain
    )
    assert by_keyword.db_uri == plain
    assert by_keyword.artifact_root_uri == str(tmp_path)
    by_position = bulk_store.BulkSqlAlchemyStore(plain, str(tmp_path))
    assert by_position.db_uri == plain
    # The older spelling is the same database, connected to with MLflow's own URI.
    legacy = bulk_store.BulkSqlAlchemyStore(
        db_uri=store_uri.bulk_uri(plain), default_artifact_root=str(tmp_path)
    )
    assert legacy.db_uri == plain
    for other in ("sqlite:///x.db", "postgresql+pg8000://u@h/d", "postgresql+psycopg://u@h/d"):
        with pytest.raises(ValueError, match="psycopg2"):
            bulk_store.BulkSqlAlchemyStore(db_uri=other, default_artifact_root=str(tmp_path))


def test_mlflow_builds_the_bulk_store_for_a_plain_postgresql_uri(platform):
    """The client's registry and the server's, for MLflow's spellings of PostgreSQL; the older
    `pgbulk://` too, with the registry and scorer stores a client derives from it."""
    from mlflow.genai.scorers.registry import MlflowTrackingStore, _get_scorer_store
    from mlflow.server.handlers import TrackingStoreRegistryWrapper
    from mlflow.store.model_registry.sqlalchemy_store import (
        SqlAlchemyStore as RegistrySqlAlchemyStore,
    )
    from mlflow.tracking._model_registry.utils import _get_store as _get_registry_store
    from mlflow.tracking._tracking_service.utils import _get_store

    local, _ = platform
    plain = local.database_uri()
    assert plain.startswith("postgresql+psycopg2://")
    server_registry = TrackingStoreRegistryWrapper()
    for built in (_get_store(plain), server_registry.get_store(plain, "s3://bucket/root")):
        assert isinstance(built, bulk_store.BulkSqlAlchemyStore), type(built)
        assert built.db_uri == plain  # MLflow's view: the URI it was given
    store_plugin.check_mlflow_builds_it(plain)
    # Another driver's cursor has no psycopg2 COPY: MLflow's own store. `postgresql://` is
    # SQLAlchemy's default driver (psycopg 3 from SQLAlchemy 2.1 on, psycopg2 before).
    assert not store_uri.takes_bulk_writes("postgresql+pg8000://u@h/d")
    assert not store_uri.takes_bulk_writes("postgresql+psycopg://u@h/d")
    assert store_uri.takes_bulk_writes("postgresql://u@h/d") == (
        make_url("postgresql://u@h/d").get_driver_name() == "psycopg2"
    )

    legacy = store_uri.bulk_uri(plain)
    assert isinstance(_get_store(legacy), bulk_store.BulkSqlAlchemyStore)
    assert _get_store(legacy).db_uri == plain
    registry = _get_registry_store(legacy, legacy)
    assert type(registry) is RegistrySqlAlchemyStore
    assert registry.db_uri == plain
    scorers = _get_scorer_store(legacy)
    assert isinstance(scorers, MlflowTrackingStore)
    assert isinstance(scorers._tracking_store, bulk_store.BulkSqlAlchemyStore)


def test_the_server_sees_a_plain_database_uri_and_builds_the_bulk_store(platform):
    """The running server's environment holds the plain URI wherever MLflow reads one, and
    MLflow's handlers, given that environment, build the bulk store, the job store and the
    registry store from it."""
    from mlflow.store.db.db_types import DATABASE_ENGINES
    from mlflow.utils.uri import get_uri_scheme

    local, _ = platform
    plain = local.database_uri()
    environ = _server_environ(local)
    assert environ["MLFLOW_BACKEND_STORE_URI"] == plain
    assert environ["_MLFLOW_SERVER_FILE_STORE"] == plain  # what _get_job_store reads
    assert environ["_MLFLOW_SERVER_REGISTRY_STORE"] == plain
    assert "pgbulk" not in json.dumps(environ)
    # What the trace-rollup start-up check needs to run rather than skip.
    assert get_uri_scheme(environ["_MLFLOW_SERVER_FILE_STORE"]) in DATABASE_ENGINES

    probe = """
import json
import mlflow
from mlflow.server import handlers
tracking = handlers._get_tracking_store()
print(json.dumps({
    "tracking": type(tracking).__module__ + "." + type(tracking).__qualname__,
    "db_uri": tracking.db_uri,
    "tracking_uri": mlflow.get_tracking_uri(),
    "job": type(handlers._get_job_store()).__qualname__,
    "registry": type(handlers._get_model_registry_store()).__module__,
}))
"""
    result = subprocess.run([sys.executable, "-c", probe], env=environ, capture_output=True,
                            text=True, timeout=120, check=True)  # fmt: skip
    built = json.loads(result.stdout.strip().splitlines()[-1])
    assert built == {
        "tracking": "tracking_server.bulk_store.BulkSqlAlchemyStore",
        "db_uri": plain,
        "tracking_uri": plain,
        "job": "SqlAlchemyJobStore",
        "registry": "mlflow.store.model_registry.sqlalchemy_store",
    }


@pytest.fixture(scope="module")
def stock_server(platform, tmp_path_factory) -> Iterator[str]:
    """MLflow's `mlflow server` (no auth) on the platform's tracking database, with job
    execution off as the entrypoint sets it."""
    local, _ = platform
    hide = tmp_path_factory.mktemp("stock-site")
    (hide / "sitecustomize.py").write_text(_HIDE_PLATFORM_ENTRY_POINTS)
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "_MLFLOW_"))}  # fmt: skip
    env.update({
        "PYTHONPATH": os.pathsep.join([str(hide), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    })  # fmt: skip
    log = tmp_path_factory.mktemp("stock-log") / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server",
             "--backend-store-uri", local.database_uri(),
             "--default-artifact-root", str(tmp_path_factory.mktemp("stock-artifacts")),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


@pytest.fixture(scope="module")
def both(platform, stock_server):
    """(name, base URL, requests session) for the platform's server (as its admin, basic mode)
    and the stock one; and an experiment both see (the same database)."""
    _, details = platform
    ours = requests.Session()
    ours.auth = (details["username"], details["password"])
    created = ours.post(f"{details['tracking_uri']}/api/2.0/mlflow/experiments/create",
                        json={"name": f"plain-uri-{uuid.uuid4().hex}"}, timeout=30)  # fmt: skip
    assert created.status_code == 200, created.text
    servers = [("platform", details["tracking_uri"], ours),
               ("stock", stock_server, requests.Session())]  # fmt: skip
    return servers, created.json()["experiment_id"]


def _answer(response: requests.Response) -> tuple[int, object]:
    try:
        body: object = response.json()
    except ValueError:
        body = response.text
    return response.status_code, body


def test_the_prompt_optimization_job_routes_answer_as_a_stock_servers(both):
    """Search, get, cancel and delete, REST and ajax, and the UI's job API: what the stock server
    answers on the same database, and never "Job store requires a backend store URI"."""
    servers, experiment_id = both
    unknown = uuid.uuid4().hex
    base = "/api/3.0/mlflow/prompt-optimization/jobs"
    calls = [
        ("GET", f"{base}/search", {"params": {"experiment_id": experiment_id}}),
        ("POST", f"{base}/search", {"json": {"experiment_id": experiment_id}}),
        ("POST", "/ajax-api/3.0/mlflow/prompt-optimization/jobs/search",
         {"json": {"experiment_id": experiment_id}}),
        ("POST", f"{base}/search", {"json": {}}),
        ("GET", f"{base}/{unknown}", {}),
        ("POST", f"{base}/{unknown}/cancel", {}),
        ("DELETE", f"{base}/{unknown}", {}),
        ("DELETE", f"/ajax-api/3.0/mlflow/prompt-optimization/jobs/{unknown}", {}),
        ("POST", "/ajax-api/3.0/jobs/search", {"json": {"job_name": "optimize_prompts"}}),
        ("GET", f"/ajax-api/3.0/jobs/{unknown}", {}),
    ]  # fmt: skip
    answers: dict[str, list] = {}
    for name, url, http in servers:
        answers[name] = [
            (method, path, *_answer(http.request(method, f"{url}{path}", timeout=30, **kwargs)))
            for method, path, kwargs in calls
        ]
    assert answers["platform"] == answers["stock"]
    assert "Job store requires a backend store URI" not in json.dumps(answers["platform"])
    statuses = [status for _, _, status, _ in answers["platform"]]
    assert statuses == [200, 200, 200, 400, 404, 404, 404, 404, 200, 404]


def test_jobs_are_found_and_deleted_on_the_platform_as_on_a_stock_server(platform, both):
    """Two optimization jobs in the job store (as MLflow's create route records one, with its
    run): both servers list and get them alike; each cancels and deletes one, and its run with
    it."""
    from mlflow.store.jobs.sqlalchemy_store import SqlAlchemyJobStore

    local, _ = platform
    servers, experiment_id = both
    base = "/api/3.0/mlflow/prompt-optimization/jobs"
    jobs = SqlAlchemyJobStore(local.database_uri())
    job_of: dict[str, str] = {}
    run_of: dict[str, str] = {}
    for name, url, http in servers:
        created = http.post(f"{url}/api/2.0/mlflow/runs/create",
                            json={"experiment_id": experiment_id}, timeout=30)  # fmt: skip
        run_of[name] = created.json()["run"]["info"]["run_id"]
        params = {"experiment_id": experiment_id, "run_id": run_of[name],
                  "prompt_uri": "prompts:/p/1", "optimizer_type": "gepa"}  # fmt: skip
        job_of[name] = jobs.create_job("optimize_prompts", json.dumps(params)).job_id

    def read(url, http) -> list:
        search = http.get(f"{url}{base}/search", params={"experiment_id": experiment_id},
                          timeout=30)  # fmt: skip
        found = [_answer(search)]
        found += [_answer(http.get(f"{url}{base}/{job_of[n]}", timeout=30)) for n in job_of]
        return found

    before = {name: read(url, http) for name, url, http in servers}
    assert before["platform"] == before["stock"]
    status, listed = before["platform"][0]
    assert status == 200
    assert isinstance(listed, dict)
    assert sorted(j["job_id"] for j in listed["jobs"]) == sorted(job_of.values())

    # MLflow deletes finalized jobs only (a pending one stays, and the answer is 200 all the
    # same): each server cancels its job, then deletes it.
    for name, url, http in servers:
        canceled = http.post(f"{url}{base}/{job_of[name]}/cancel", timeout=30)
        assert canceled.status_code == 200, (name, canceled.text)
        assert canceled.json()["job"]["state"]["status"] == "JOB_STATUS_CANCELED"
        deleted = http.delete(f"{url}{base}/{job_of[name]}", timeout=30)
        assert _answer(deleted) == (200, {}), (name, deleted.text)
    after = {name: read(url, http) for name, url, http in servers}
    assert after["platform"] == after["stock"]
    assert after["platform"][0] == (200, {})
    assert [status for status, _ in after["platform"][1:]] == [404, 404]
    for name, url, http in servers:
        run = http.get(f"{url}/api/2.0/mlflow/runs/get", params={"run_id": run_of[name]},
                       timeout=30).json()["run"]  # fmt: skip
        assert run["info"]["lifecycle_stage"] == "deleted"


def _metric_statements(local, run_ids: list[str], write) -> dict[str, set[str]]:
    """The statements (first two words) that inserted metric rows of these runs while `write`
    ran: a row trigger records current_query(), installed and removed by a superuser."""
    name = f"platform_test_{uuid.uuid4().hex}"
    admin = local.superuser("mlflow")
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {name} (run_uuid text, query text)")
            cursor.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
                "SET search_path = pg_catalog, public AS $$ BEGIN "
                f"IF NEW.run_uuid = ANY(%s) THEN INSERT INTO public.{name} "
                "VALUES (NEW.run_uuid, pg_catalog.current_query()); END IF; RETURN NEW; END $$",
                (run_ids,),
            )
            cursor.execute(f"CREATE TRIGGER {name} BEFORE INSERT ON metrics FOR EACH ROW "
                           f"EXECUTE FUNCTION {name}()")  # fmt: skip
        try:
            write()
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP TRIGGER {name} ON metrics")
                cursor.execute(f"DROP FUNCTION {name}()")
        with admin.cursor() as cursor:
            cursor.execute(f"SELECT run_uuid, query FROM {name}")
            rows = cursor.fetchall()
            cursor.execute(f"DROP TABLE {name}")
    finally:
        admin.close()
    statements: dict[str, set[str]] = {run_id: set() for run_id in run_ids}
    for run_id, query in rows:
        statements[run_id].add(" ".join(query.split()[:2]).upper())
    return statements


def test_every_metric_write_of_the_platforms_server_is_the_bulk_stores(platform, both):
    """log-metric and log-batch, through the fast views and MLflow's own (a body posted as a
    JSON string), and a batch with params: COPY on the platform's server, INSERT on the stock
    one, on the same tables."""
    local, _ = platform
    servers, experiment_id = both
    runs: dict[str, str] = {}
    for name, url, http in servers:
        created = http.post(f"{url}/api/2.0/mlflow/runs/create",
                            json={"experiment_id": experiment_id}, timeout=30)  # fmt: skip
        assert created.status_code == 200, created.text
        runs[name] = created.json()["run"]["info"]["run_id"]

    def write() -> None:
        for name, url, http in servers:
            run_id = runs[name]
            metric = {"key": "m", "value": 1.5, "timestamp": 1, "step": 1}
            batch = {"run_id": run_id,
                     "metrics": [{**metric, "step": s} for s in range(2, 5)]}  # fmt: skip
            bodies = [
                ("log-metric", json.dumps({"run_id": run_id, **metric})),
                ("log-batch", json.dumps(batch)),
                ("log-metric", json.dumps(json.dumps({"run_id": run_id, **metric, "step": 9}))),
                ("log-batch", json.dumps(json.dumps({**batch, "metrics": [
                    {**metric, "step": 10}]}))),
                ("log-batch", json.dumps({**batch, "metrics": [{**metric, "step": 11}],
                                          "params": [{"key": "p", "value": "v"}]})),
            ]  # fmt: skip
            for path, data in bodies:
                answer = http.post(f"{url}/api/2.0/mlflow/runs/{path}", data=data,
                                   headers={"Content-Type": "application/json"},
                                   timeout=30)  # fmt: skip
                assert answer.status_code == 200, (name, path, answer.text)

    statements = _metric_statements(local, list(runs.values()), write)
    assert statements == {runs["platform"]: {"COPY METRICS"},
                          runs["stock"]: {"INSERT INTO"}}  # fmt: skip
    platform_http = servers[0][2]
    history = platform_http.get(f"{servers[0][1]}/api/2.0/mlflow/metrics/get-history",
                                params={"run_id": runs["platform"], "metric_key": "m"},
                                timeout=30).json()["metrics"]  # fmt: skip
    assert sorted(m["step"] for m in history) == [1, 2, 3, 4, 9, 10, 11]
