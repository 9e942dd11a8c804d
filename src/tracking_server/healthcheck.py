"""Container health check: the tracking server answers /health on its own port, and the tracking
schema is still the one it started with.

MLflow checks the schema only when a process first uses its store, so after a newer task has
migrated the database (a rolling deployment), an older task that had served no tracking call
answers every one with 500 while /health still says 200. This check compares the database's
revision with the one the entrypoint recorded at start (`record_revision`), and reports such a
task unhealthy, so ECS replaces it and the load balancer stops sending it clients. A database
it cannot reach is no verdict: a failover must not make every task unhealthy at once.
"""

from __future__ import annotations

import os
import sys
import tempfile
import urllib.request
from pathlib import Path

from tracking_server import settings

DATABASE_TIMEOUT_SECONDS = 3


def revision_file(port: int) -> Path:
    """Per port: several servers may share a machine's /tmp (`invoke local`, tests)."""
    return Path(tempfile.gettempdir()) / f"mlflow-platform-{port}.schema-revision"


def record_revision(port: int, revision: str | None) -> None:
    if revision:
        revision_file(port).write_text(revision)


def schema_moved(port: int, environ: dict[str, str]) -> str | None:
    """Why the schema is not the one this server started with; None when it is, or when that
    cannot be told (no record, the database unreachable)."""
    try:
        expected = revision_file(port).read_text().strip()
        database = settings.from_environ(environ).database
    except (OSError, settings.SettingsError):
        return None
    if database.sqlite_path:
        return None
    import psycopg2

    try:
        args = database.connect_args()
        connection = psycopg2.connect(**args, connect_timeout=DATABASE_TIMEOUT_SECONDS)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT version_num FROM alembic_version")
                found = cursor.fetchone()
        finally:
            connection.close()
    except psycopg2.Error:
        return None
    if found is None or found[0] == expected:
        return None
    return (
        f"tracking schema at revision {found[0]}, not {expected} as when this server started: "
        "a newer version migrated it; this task must be replaced"
    )


def main() -> int:
    port = int(os.environ.get(settings.SERVER_PORT) or settings.PORT)
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}{settings.HEALTH_PATH}", timeout=4
        ) as response:
            if response.status != 200:
                return 1
    except OSError:
        return 1
    moved = schema_moved(port, dict(os.environ))
    if moved:
        print(f"tracking-server health: {moved}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
