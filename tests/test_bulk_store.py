"""The bulk metric store against MLflow's own store, on the local platform's PostgreSQL."""

from __future__ import annotations

import math
import random
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracking._tracking_service.utils import _get_store

from mlflow_platform.paths import IMAGE_SOURCE
from tracking_server import app, bulk_store, store_plugin, store_uri
from tracking_server import settings as names
from tracking_server.entrypoint import server_command
from tracking_server.settings import from_environ


@pytest.fixture(scope="module")
def stores(platform, tmp_path_factory):
    local, _ = platform
    uri = local.database_uri()
    artifacts = str(tmp_path_factory.mktemp("artifacts"))
    stock = SqlAlchemyStore(uri, artifacts)
    bulk = store_plugin.store(uri, artifacts)
    assert isinstance(bulk, bulk_store.BulkSqlAlchemyStore)
    experiment = stock.create_experiment(f"bulk-store-{random.randrange(10**9)}")
    return stock, bulk, lambda: stock.create_run(experiment, "test", 0, [], "run").info.run_id


def _snapshot(store: SqlAlchemyStore, run_id: str) -> tuple[dict, dict]:
    latest = store.get_run(run_id).data.metrics
    history = {
        key: sorted(
            (m.step, m.timestamp, repr(m.value)) for m in store.get_metric_history(run_id, key)
        )
        for key in latest
    }
    return {k: repr(v) for k, v in latest.items()}, history


def test_the_same_batches_leave_the_same_rows_as_mlflows_store(stores):
    stock, bulk, new_run = stores
    rnd = random.Random(20261126)
    values = [float("nan"), float("inf"), float("-inf"), 0.0, 1.0, -2.5]
    by_stock, by_bulk = new_run(), new_run()
    for _ in range(30):
        metrics = [
            Metric(
                f"m{rnd.randrange(6)}",
                rnd.choice([*values, rnd.random()]),
                rnd.randrange(50),
                rnd.randrange(8),
            )
            for _ in range(rnd.randrange(1, 60))
        ]
        metrics += metrics[: rnd.randrange(4)]  # repeated within the batch
        for store, run_id in ((stock, by_stock), (bulk, by_bulk)):
            if len(metrics) == 1:
                store.log_metric(run_id, metrics[0])
            else:
                store.log_batch(run_id, metrics, [], [])
        bulk.log_batch(by_bulk, metrics[:2], [], [])  # repeated across batches: ignored
        stock.log_batch(by_stock, metrics[:2], [], [])
    assert _snapshot(stock, by_stock) == _snapshot(bulk, by_bulk)
    assert len(_snapshot(bulk, by_bulk)[0]) == 6


def test_a_deleted_run_takes_no_metric(stores):
    stock, bulk, new_run = stores
    run_id = new_run()
    stock.delete_run(run_id)
    with pytest.raises(MlflowException, match="must be in the 'active' state"):
        bulk.log_batch(run_id, [Metric("loss", 1.0, 1, 1)], [], [])
    stock.restore_run(run_id)
    assert stock.get_metric_history(run_id, "loss") == []


def test_an_invalid_metric_rejects_the_batch_before_writing(stores):
    stock, bulk, new_run = stores
    run_id = new_run()
    with pytest.raises(MlflowException, match=r"metrics\[1\]"):
        bulk.log_batch(run_id, [Metric("ok", 1.0, 1, 1), Metric("../up", 1.0, 1, 1)], [], [])
    assert stock.get_run(run_id).data.metrics == {}


def test_concurrent_writers_on_one_run_lose_nothing(stores):
    stock, bulk, new_run = stores
    run_id = new_run()
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for batch in range(5):
                metrics = [
                    Metric(
                        f"k{i % 7}", float(worker), 1_000 + batch, worker * 10_000 + batch * 200 + i
                    )
                    for i in range(200)
                ]
                bulk.log_batch(run_id, metrics, [], [])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    total = sum(len(stock.get_metric_history(run_id, f"k{k}")) for k in range(7))
    assert total == 4 * 5 * 200
    latest = stock.get_run(run_id).data.metrics
    assert latest == {f"k{k}": 3.0 for k in range(7)}  # worker 3 logs the greatest steps
    assert not any(math.isnan(v) for v in latest.values())


def test_mlflow_finds_the_store_through_its_entry_point(stores, platform):
    """For the plain URI MLflow sees everywhere, and for the older `pgbulk://` spelling."""
    local, _ = platform
    for uri in (local.database_uri(), store_uri.bulk_uri(local.database_uri())):
        found = _get_store(uri)
        assert isinstance(found, bulk_store.BulkSqlAlchemyStore)
        assert found.db_uri == local.database_uri()


def test_the_server_uses_the_bulk_store_and_the_registry_keeps_mlflows(tmp_path, monkeypatch):
    """In `iam` mode too: the platform's auth application, the bulk store, MLflow's registry.
    (The auth database itself is prepared against a real PostgreSQL in the local platform's
    tests; here there is none.)"""
    from tracking_server import entrypoint

    monkeypatch.setattr(entrypoint, "ensure_auth_database", lambda settings: "sqlite:///auth")
    monkeypatch.setattr(entrypoint, "prepare_auth", lambda settings, uri: None)
    settings = from_environ(
        {
            names.AUTH_MODE: "iam",
            names.DB_HOST: "db.internal",
            names.DB_PORT: "5432",
            names.DB_NAME: "mlflow",
            names.DB_USERNAME: "mlflow_server",
            names.DB_PASSWORD: "p@ss/word-long",
            names.DB_MASTER_USERNAME: "mlflow",
            names.DB_MASTER_PASSWORD: "master-password",
            names.DB_SSL_ROOT_CERT: str(
                Path(names.__file__).parent / "certs" / "rds-global-bundle.pem"
            ),
            names.ARTIFACTS_DESTINATION: "s3://bucket/artifacts",
            names.ALLOWED_HOSTS: "mlflow.internal",
            names.ADMIN_USERNAME: "admin",
            names.ADMIN_PASSWORD: "a" * 20,
            names.SECRET_KEY: "k" * 40,
        }
    )
    argv, env = server_command(settings, tmp_path)
    assert argv[argv.index("--app-name") + 1] == app.BASIC_AUTH
    config = Path(env["MLFLOW_AUTH_CONFIG_PATH"]).read_text()
    assert "authorization_function = tracking_server.identity:authenticate_request" in config
    plain = (
        "postgresql+psycopg2://mlflow_server:p%40ss%2Fword-long@db.internal:5432/mlflow"
        f"?sslmode=verify-full&sslrootcert={settings.database.ssl_root_cert}"
    )
    # The plain URI, which MLflow builds the bulk store for (its `postgresql` entry point).
    assert env["MLFLOW_BACKEND_STORE_URI"] == plain
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_REGISTRY_STORE_URI"] == plain


def test_the_server_refuses_to_start_when_mlflow_would_build_another_store(tmp_path, monkeypatch):
    """Another package's entry point for `postgresql`, or this one missing from the installed
    metadata: MLflow would build its own store and the metric writes would lose the bulk path
    without a word."""
    from mlflow.tracking._tracking_service import utils as tracking_utils

    from tracking_server import entrypoint

    monkeypatch.setattr(entrypoint, "ensure_auth_database", lambda settings: "sqlite:///auth")
    monkeypatch.setattr(entrypoint, "prepare_auth", lambda settings, uri: None)
    settings = from_environ(
        {
            names.AUTH_MODE: "basic",
            names.DB_HOST: "db.internal",
            names.DB_PORT: "5432",
            names.DB_NAME: "mlflow",
            names.DB_USERNAME: "mlflow_server",
            names.DB_PASSWORD: "p@ss/word-long",
            names.DB_MASTER_USERNAME: "mlflow",
            names.DB_MASTER_PASSWORD: "master-password",
            names.DB_SSL_ROOT_CERT: str(
                Path(names.__file__).parent / "certs" / "rds-global-bundle.pem"
            ),
            names.ARTIFACTS_DESTINATION: "s3://bucket/artifacts",
            names.ADMIN_USERNAME: "admin",
            names.ADMIN_PASSWORD: "a" * 20,
            names.SECRET_KEY: "k" * 40,
        }
    )
    registry = tracking_utils._tracking_store_registry
    monkeypatch.setitem(registry._registry, "postgresql", tracking_utils._get_sqlalchemy_store)
    with pytest.raises(SystemExit, match="refusing to start: MLflow builds the tracking store"):
        server_command(settings, tmp_path)


def test_the_image_installs_the_entry_point(tmp_path):
    """What the Dockerfile installs: a wheel of src/tracking_server with its entry points."""
    source = tmp_path / "tracking_server"
    subprocess.run(["cp", "-r", str(IMAGE_SOURCE), str(source)], check=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path / "wheel"),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        declared = archive.read(entry_points).decode()
    assert "postgresql = tracking_server.store_plugin:store" in declared
    assert "pgbulk = tracking_server.store_plugin:store" in declared
    assert "pgbulk = tracking_server.store_plugin:registry_store" in declared
    assert "pgbulk = tracking_server.store_plugin:scorer_store" in declared
    assert "platform-basic-auth = tracking_server.app:create_basic_auth_app" in declared
    assert "platform = " not in declared  # both modes run the auth application
    assert "tracking_server/bulk_store.py" in names
    assert "tracking_server/fast_paths.py" in names
    assert "tracking_server/entrypoint.py" in names


def test_concurrent_writers_of_the_same_rows_store_each_once(stores):
    """Every writer but one finds the rows there: its COPY fails and the staging path skips them."""
    stock, bulk, new_run = stores
    run_id = new_run()
    metrics = [Metric(f"k{i % 5}", float(i), 7, i) for i in range(300)]
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def writer() -> None:
        try:
            start.wait()
            for _ in range(3):
                bulk.log_batch(run_id, metrics, [], [])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    history = [m for k in range(5) for m in stock.get_metric_history(run_id, f"k{k}")]
    assert sorted(m.step for m in history) == list(range(300))
    assert stock.get_run(run_id).data.metrics == {f"k{k}": float(295 + k) for k in range(5)}


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def test_extreme_steps_and_timestamps_are_stored_as_mlflows_store_stores_them(stores):
    """Every int64 step and every timestamp MLflow accepts (>= 0), alone and in batches."""
    stock, bulk, new_run = stores
    steps = [INT64_MIN, INT64_MIN + 1, -1, 0, INT64_MAX - 1, INT64_MAX]
    timestamps = [0, 1, INT64_MAX]
    metrics = [Metric("m", float(i), t, s) for i, (t, s) in
               enumerate((t, s) for t in timestamps for s in steps)]  # fmt: skip
    by_stock, by_bulk = new_run(), new_run()
    for store, run_id in ((stock, by_stock), (bulk, by_bulk)):
        for i, metric in enumerate(metrics[::2]):
            store.log_metric(run_id, Metric(f"one{i}", metric.value, metric.timestamp, metric.step))
        store.log_batch(run_id, metrics, [], [])
    assert _snapshot(stock, by_stock) == _snapshot(bulk, by_bulk)
    stored = bulk.get_metric_history(by_bulk, "m")
    assert sorted((m.timestamp, m.step) for m in stored) == sorted(
        (t, s) for t in timestamps for s in steps
    )
    latest = bulk.get_run(by_bulk).data.metrics["m"]
    assert latest == float(len(metrics) - 1)  # the greatest step, then the greatest timestamp
    # The fast path's entry, with the same values.
    by_values = new_run()
    bulk.log_metric_values(by_values, [(m.key, m.value, m.timestamp, m.step) for m in metrics])
    assert _snapshot(bulk, by_values)[1]["m"] == _snapshot(stock, by_stock)[1]["m"]


def test_a_store_built_from_its_uri_alone_is_built_as_mlflows(platform, monkeypatch, tmp_path):
    """The entry point against MLflow's own builders for the plain URI: the same artifact root
    (the server's, from the environment, or MLflow's default), the same read replica."""
    from mlflow.server.constants import READ_REPLICA_BACKEND_STORE_URI_ENV_VAR
    from mlflow.server.handlers import TrackingStoreRegistryWrapper
    from mlflow.tracking._tracking_service import utils as tracking_utils

    local, _ = platform
    plain = local.database_uri()
    monkeypatch.chdir(tmp_path)  # MLflow's default root is ./mlruns
    for root in (None, "s3://bucket/server-root"):
        if root is None:
            monkeypatch.delenv("_MLFLOW_SERVER_ARTIFACT_ROOT", raising=False)
        else:
            monkeypatch.setenv("_MLFLOW_SERVER_ARTIFACT_ROOT", root)
        ours = store_plugin.store(plain)
        mlflows = tracking_utils._get_sqlalchemy_store(plain, None)
        assert isinstance(ours, bulk_store.BulkSqlAlchemyStore)
        assert ours.artifact_root_uri == mlflows.artifact_root_uri
        assert ours.artifact_root_uri == (root or str(tmp_path / "mlruns"))
        experiment = ours.get_experiment(
            ours.create_experiment(f"uri-alone-{random.randrange(10**9)}")
        )
        assert experiment.artifact_location == (
            f"{mlflows.artifact_root_uri}/{experiment.experiment_id}"
        )
    # An explicit artifact URI wins over the environment, as in MLflow's builders.
    explicit = str(tmp_path / "explicit")
    assert (
        store_plugin.store(plain, explicit).artifact_root_uri
        == tracking_utils._get_sqlalchemy_store(plain, explicit).artifact_root_uri
    )

    replica = plain.replace("@127.0.0.1:", "@localhost:")  # the same database, another URI
    monkeypatch.setenv(READ_REPLICA_BACKEND_STORE_URI_ENV_VAR, replica)
    ours = store_plugin.store(plain, "s3://bucket/x")
    mlflows = TrackingStoreRegistryWrapper._get_sqlalchemy_store(plain, "s3://bucket/x")
    assert ours.read_engine is not None
    assert ours.read_engine.url == mlflows.read_engine.url
    monkeypatch.delenv(READ_REPLICA_BACKEND_STORE_URI_ENV_VAR)

    # With workspaces, MLflow's own workspace-aware store: the bulk writes know no workspace.
    monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "true")
    ours = store_plugin.store(plain)
    assert type(ours) is type(tracking_utils._get_sqlalchemy_store(plain, None))
    assert not isinstance(ours, bulk_store.BulkSqlAlchemyStore)
