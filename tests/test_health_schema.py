"""The container health check fails a task whose tracking schema moved under it.

After a rolling deployment's first new task migrates the database, an older task that had served
no tracking call answers every one with 500 while MLflow's /health says 200
(tests/test_schema_migration.py shows it for 3.17.2). The platform's health check compares the
database's revision with the one its server started with, so ECS replaces such a task; a
database it cannot reach is no verdict, so a failover does not fail every task at once.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

from mlflow_platform.local.platform import MASTER_SETTINGS
from tracking_server import healthcheck


def _check(local) -> subprocess.CompletedProcess:
    """`python -m tracking_server.healthcheck` with the server container's environment."""
    env = local.server_environment(local._state(), local._credentials())
    env = {k: v for k, v in env.items() if k not in MASTER_SETTINGS}
    return subprocess.run([sys.executable, "-m", "tracking_server.healthcheck"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@contextlib.contextmanager
def _stamped(local, revision: str):
    with contextlib.closing(local.superuser("mlflow")) as db, db.cursor() as cursor:
        cursor.execute("SELECT version_num FROM alembic_version")
        (current,) = cursor.fetchone()
        cursor.execute("UPDATE alembic_version SET version_num = %s", (revision,))
    try:
        yield current
    finally:
        with contextlib.closing(local.superuser("mlflow")) as db, db.cursor() as cursor:
            cursor.execute("UPDATE alembic_version SET version_num = %s", (current,))


def test_a_server_on_the_schema_it_started_with_is_healthy(platform):
    local, _ = platform
    port = local._state()["server"]["port"]
    assert healthcheck.revision_file(port).read_text()  # recorded at start
    done = _check(local)
    assert done.returncode == 0, done.stderr


def test_a_server_whose_schema_a_newer_version_migrated_is_unhealthy(platform):
    local, _ = platform
    with _stamped(local, "f00dfeed0001") as started_with:
        done = _check(local)
    assert done.returncode == 1
    assert f"revision f00dfeed0001, not {started_with}" in done.stderr
    assert _check(local).returncode == 0  # back on its own schema


def test_a_database_it_cannot_reach_is_no_verdict(platform):
    local, _ = platform
    env = local.server_environment(local._state(), local._credentials())
    env = {k: v for k, v in env.items() if k not in MASTER_SETTINGS}
    port = int(env["MLFLOW_PLATFORM_PORT"])
    env["MLFLOW_PLATFORM_DB_PORT"] = "1"  # nothing listens there
    assert healthcheck.schema_moved(port, env) is None
