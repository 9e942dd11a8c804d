"""How MLflow reaches the bulk metric store: the `pgbulk://` scheme and its entry point.

MLflow loads `mlflow.tracking_store` entry points while `mlflow.tracking` is still importing,
so this module imports nothing from MLflow; the store itself is imported on first use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

SCHEME = "pgbulk"
DRIVER = "postgresql+psycopg2"
# mlflow.server.constants.READ_REPLICA_BACKEND_STORE_URI_ENV_VAR: importing that module builds
# MLflow's Flask application, which a client building a store has no use for.
READ_REPLICA_ENV_VAR = "_MLFLOW_SERVER_READ_REPLICA_BACKEND_STORE"


def plain_uri(store_uri: str) -> str:
    """pgbulk://... -> postgresql+psycopg2://... (the same database, MLflow's own driver)."""
    scheme, separator, rest = store_uri.partition("://")
    if scheme != SCHEME or not separator:
        raise ValueError(f"not a {SCHEME}:// URI")
    return f"{DRIVER}://{rest}"


def bulk_uri(plain: str) -> str:
    scheme, separator, rest = plain.partition("://")
    if not scheme.startswith("postgresql") or not separator:
        raise ValueError("not a PostgreSQL URI")
    return f"{SCHEME}://{rest}"


def store(store_uri: str, artifact_uri: str | None = None) -> SqlAlchemyStore:
    """The entry point: MLflow's registries call it with these keywords.

    It builds what MLflow's own builders for a database URI build (`_get_sqlalchemy_store` in
    mlflow/tracking/_tracking_service/utils.py and mlflow/server/handlers.py), so a store made
    from the URI alone (MLflow's CLI, a client in the server's process) works as theirs does:
    without an artifact URI, the server's artifact root from `_MLFLOW_SERVER_ARTIFACT_ROOT`,
    else MLflow's default (./mlruns); the server's read replica, if set; and with workspaces
    on, MLflow's workspace-aware store itself, whose scoping the bulk writes do not know (the
    fast paths then leave metric writes to MLflow's views).
    """
    from mlflow.environment_variables import MLFLOW_ENABLE_WORKSPACES
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.tracking._tracking_service.utils import _SERVER_ARTIFACT_ROOT_ENV_VAR

    if artifact_uri is None:
        artifact_uri = os.environ.get(
            _SERVER_ARTIFACT_ROOT_ENV_VAR, DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
        )
    read_db_uri = os.environ.get(READ_REPLICA_ENV_VAR)
    if read_db_uri and read_db_uri.startswith(f"{SCHEME}://"):
        read_db_uri = plain_uri(read_db_uri)
    if MLFLOW_ENABLE_WORKSPACES.get():
        from mlflow.store.tracking.sqlalchemy_workspace_store import (
            WorkspaceAwareSqlAlchemyStore,
        )

        return WorkspaceAwareSqlAlchemyStore(
            plain_uri(store_uri), artifact_uri, read_db_uri=read_db_uri
        )
    from tracking_server.bulk_store import BulkSqlAlchemyStore

    return BulkSqlAlchemyStore(store_uri, artifact_uri, read_db_uri=read_db_uri)
