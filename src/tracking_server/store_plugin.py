"""How MLflow reaches the bulk metric store: the entry point of the `pgbulk://` scheme.

MLflow loads `mlflow.tracking_store` entry points while `mlflow.tracking` is still importing,
so this module imports nothing from MLflow; the store itself is imported on first use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from tracking_server.store_uri import SCHEME, plain_uri

if TYPE_CHECKING:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

# mlflow.server.constants.READ_REPLICA_BACKEND_STORE_URI_ENV_VAR: importing that module builds
# MLflow's Flask application, which a client building a store has no use for.
READ_REPLICA_ENV_VAR = "_MLFLOW_SERVER_READ_REPLICA_BACKEND_STORE"


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
