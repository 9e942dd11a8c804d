"""When PostgreSQL fails a metric write: deadlocks retried as MLflow's store retries them, and
no database text in the fast path's answers. On the local platform's PostgreSQL, with failures
made there: a real deadlock (lock orders forced by a second connection) and errors raised by a
trigger, which a superuser connection (the platform's, over its socket) installs and removes.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg2
import pytest
import requests
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from tracking_server import store_plugin, store_uri


def _superuser(local) -> psycopg2.extensions.connection:
    return local.superuser("mlflow")


@pytest.fixture(scope="module")
def setup(platform, tmp_path_factory):
    local, details = platform
    uri = local.database_uri()
    artifacts = str(tmp_path_factory.mktemp("artifacts"))
    stock = SqlAlchemyStore(uri, artifacts)
    bulk = store_plugin.store(store_uri.bulk_uri(uri), artifacts)
    http = requests.Session()
    http.auth = (details["username"], details["password"])
    experiment = stock.create_experiment(f"database-errors-{uuid.uuid4().hex}")
    admin = _superuser(local)
    yield local, details["tracking_uri"], http, stock, bulk, admin, experiment
    admin.close()


def _new_run(stock: SqlAlchemyStore, experiment: str) -> str:
    return stock.create_run(experiment, "test", 0, [], "run").info.run_id


@contextlib.contextmanager
def _failing_inserts(admin, key: str, message: str, code: str) -> Iterator[Callable[[], int]]:
    """Every insert of a metric named `key` fails with `message` and SQLSTATE `code`; yields
    a function that says how many inserts were tried (a sequence: not rolled back)."""
    name = f"platform_test_{uuid.uuid4().hex}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE SEQUENCE {name}")
        cursor.execute(f"GRANT USAGE ON SEQUENCE {name} TO PUBLIC")
        cursor.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.key = %s THEN PERFORM nextval('{name}'); "
            f"RAISE EXCEPTION '%%', %s USING ERRCODE = %s; END IF; RETURN NEW; END $$",
            (key, message, code),
        )
        cursor.execute(f"CREATE TRIGGER {name} BEFORE INSERT ON metrics FOR EACH ROW "
                       f"EXECUTE FUNCTION {name}()")  # fmt: skip

    def attempts() -> int:
        with admin.cursor() as cursor:
            cursor.execute(f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {name}")
            return cursor.fetchone()[0]

    try:
        yield attempts
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER {name} ON metrics")
            cursor.execute(f"DROP FUNCTION {name}()")
            cursor.execute(f"DROP SEQUENCE {name}")


def test_deadlocks_are_retried_as_mlflows_store_retries_them(setup):
    """The same attempts and the same final error as MLflow's store, for a write that
    deadlocks every time (SQLSTATE 40P01, what PostgreSQL reports for a deadlock)."""
    _, _, _, stock, bulk, admin, experiment = setup
    key = f"deadlocks-{uuid.uuid4().hex[:8]}"
    outcomes = {}
    for name, store in (("stock", stock), ("bulk", bulk)):
        run_id = _new_run(stock, experiment)
        with _failing_inserts(admin, key, "deadlock detected", "40P01") as attempts:
            with pytest.raises(MlflowException) as raised:
                store.log_batch(run_id, [Metric(key, 1.0, 1, 1), Metric("other", 1.0, 1, 1)],
                                [], [])  # fmt: skip
            outcomes[name] = (attempts(), raised.value.error_code)
        assert stock.get_run(run_id).data.metrics == {}
    assert outcomes["bulk"] == outcomes["stock"]
    assert outcomes["stock"][0] > 1  # MLflow retries deadlocks
    assert outcomes["stock"][1] == "TEMPORARILY_UNAVAILABLE"


def test_other_database_errors_are_not_retried_as_in_mlflows_store(setup):
    _, _, _, stock, bulk, admin, experiment = setup
    key = f"fails-{uuid.uuid4().hex[:8]}"
    for store in (stock, bulk):
        run_id = _new_run(stock, experiment)
        with _failing_inserts(admin, key, "no", "XX000") as attempts:
            with pytest.raises(MlflowException):
                store.log_metric(run_id, Metric(key, 1.0, 1, 1))
            assert attempts() == 1


def _postgres_log(local) -> str:
    return (local.dir / "postgres" / "postgres.log").read_text(errors="replace")


def _blocked_by(admin, pid: int, timeout: float = 30) -> int:
    """The backend that waits for a lock the backend `pid` holds."""
    deadline = time.monotonic() + timeout
    with admin.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                           (pid,))  # fmt: skip
            if found := cursor.fetchall():
                return found[0][0]
            time.sleep(0.01)
    raise AssertionError(f"nothing waited for backend {pid}")


@pytest.mark.parametrize("writer", ["store", "server"])
def test_a_deadlock_between_two_writers_is_retried_and_the_metrics_stored(setup, writer):
    """A real deadlock on the latest-metrics rows: the bulk writer updates `a` and waits for
    `b`, which another transaction holds while it waits for `a`. PostgreSQL aborts the writer
    (the other transaction's deadlock_timeout is set long, so it never checks first)."""
    local, uri, http, stock, bulk, admin, experiment = setup
    run_id = _new_run(stock, experiment)
    bulk.log_batch(run_id, [Metric("a", 0.0, 1, 0), Metric("b", 0.0, 1, 0)], [], [])
    other = _superuser(local)
    other.autocommit = False
    log_before = _postgres_log(local)
    attempts: list[int] = []
    outcome: list[object] = []

    def write() -> None:
        try:
            if writer == "store":
                bulk.log_batch(run_id, [Metric("a", 1.0, 2, 1), Metric("b", 1.0, 2, 1)], [], [])
                outcome.append("ok")
            else:
                body = {"run_id": run_id, "metrics": [
                    {"key": "a", "value": 1.0, "timestamp": 2, "step": 1},
                    {"key": "b", "value": 1.0, "timestamp": 2, "step": 1}]}  # fmt: skip
                answer = http.post(f"{uri}/api/2.0/mlflow/runs/log-batch", json=body, timeout=60)
                outcome.append((answer.status_code, answer.text))
        except BaseException as error:
            outcome.append(error)

    write_once = bulk._write_metrics
    if writer == "store":  # count the bulk store's attempts
        bulk._write_metrics = lambda *a, **k: (attempts.append(1), write_once(*a, **k))[1]
    try:
        with other.cursor() as cursor:
            cursor.execute("SET deadlock_timeout = '1min'")
            cursor.execute("SET lock_timeout = '30s'")
            lock = "SELECT 1 FROM latest_metrics WHERE run_uuid = %s AND key = %s FOR UPDATE"
            cursor.execute(lock, (run_id, "b"))
            thread = threading.Thread(target=write)
            thread.start()
            victim = _blocked_by(admin, other.get_backend_pid())
            cursor.execute(lock, (run_id, "a"))  # returns once PostgreSQL aborts the writer
        other.rollback()
        thread.join(60)
    finally:
        bulk.__dict__.pop("_write_metrics", None)
        other.close()
    deadlocks = [line for line in _postgres_log(local)[len(log_before) :].splitlines()
                 if "deadlock detected" in line]  # fmt: skip
    assert any(f"[{victim}]" in line for line in deadlocks), deadlocks
    if writer == "store":
        assert outcome == ["ok"]
        assert len(attempts) == 2
    else:
        assert outcome == [(200, "{}")]
    history = {k: sorted(m.step for m in stock.get_metric_history(run_id, k)) for k in "ab"}
    assert history == {"a": [0, 1], "b": [0, 1]}
    assert stock.get_run(run_id).data.metrics == {"a": 1.0, "b": 1.0}


@pytest.mark.parametrize(
    ("code", "status", "error_code"),
    [("XX000", 500, "INTERNAL_ERROR"), ("22003", 500, "INTERNAL_ERROR"),
     ("40P01", 503, "TEMPORARILY_UNAVAILABLE")],
)  # fmt: skip
def test_the_fast_path_answers_a_database_failure_without_the_databases_words(
    setup, code, status, error_code
):
    """The words go to the server's log; the client hears that the server failed (503 where
    MLflow's store says the database is temporarily unavailable: the client retries)."""
    local, uri, http, stock, _, admin, experiment = setup
    secret = f"secret-{uuid.uuid4().hex}"
    key = f"k-{uuid.uuid4().hex[:8]}"
    for path, body in (
        ("log-metric", {"key": key, "value": 1.0, "timestamp": 1, "step": 1}),
        ("log-batch", {"metrics": [{"key": key, "value": 1.0, "timestamp": 1, "step": 1}]}),
    ):
        run_id = _new_run(stock, experiment)
        server_log = (local.dir / "server.log").stat().st_size
        with _failing_inserts(admin, key, f"deadlock detected {secret}", code):
            answer = http.post(f"{uri}/api/2.0/mlflow/runs/{path}",
                               json={"run_id": run_id, **body}, timeout=60)  # fmt: skip
        assert answer.status_code == status, answer.text
        assert json.loads(answer.text)["error_code"] == error_code
        assert secret not in answer.text and "Traceback" not in answer.text
        assert "deadlock" not in answer.text and "psycopg2" not in answer.text
        with open(local.dir / "server.log", errors="replace") as log:
            log.seek(server_log)
            assert secret in log.read()
        assert stock.get_run(run_id).data.metrics == {}
