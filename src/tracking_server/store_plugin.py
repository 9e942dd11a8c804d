"""How MLflow reaches the bulk metric store: entry points for MLflow's store registries.

`mlflow.tracking_store` entry points are registered after MLflow's built-in builders, by the
client's registry (mlflow/tracking/_tracking_service/utils.py) and the server's
(`TrackingStoreRegistryWrapper` in mlflow/server/handlers.py) alike, so the one named
`postgresql` replaces MLflow's builder for every PostgreSQL URI (`get_uri_scheme` gives
`postgresql` for `postgresql+psycopg2://` too). The server's backend URI therefore stays the
plain database URI, which the rest of MLflow reads as one: the job store (prompt-optimization
routes), the trace-rollup start-up check, and the registry and scorer stores built from the
tracking URI.

The `pgbulk://` spelling still selects the bulk store, and the registry and scorer stores
accept it too (the same database): MLflow code that needs a database URI by its scheme (the job
store, the trace-rollup check) does not, which is why the server no longer gets it.

MLflow loads these entry points while its own modules are still importing, so this module
imports nothing from MLflow at the top; the stores are imported on first use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from tracking_server.store_uri import SCHEME, database_uri, takes_bulk_writes

if TYPE_CHECKING:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

# mlflow.server.constants.READ_REPLICA_BACKEND_STORE_URI_ENV_VAR: importing that module builds
# MLflow's Flask application, which a client building a store has no use for.
READ_REPLICA_ENV_VAR = "_MLFLOW_SERVER_READ_REPLICA_BACKEND_STORE"


def _read_replica() -> str | None:
    read_db_uri = os.environ.get(READ_REPLICA_ENV_VAR)
    return database_uri(read_db_uri) if read_db_uri else None


def store(store_uri: str, artifact_uri: str | None = None) -> SqlAlchemyStore:
    """The tracking store entry point (`postgresql` and `pgbulk`): MLflow's registries call it
    with these keywords.

    It builds what MLflow's own builders for a database URI build (`_get_sqlalchemy_store` in
    mlflow/tracking/_tracking_service/utils.py and mlflow/server/handlers.py), so a store made
    from the URI alone (MLflow's CLI, a client in the server's process) works as theirs does:
    without an artifact URI, the server's artifact root from `_MLFLOW_SERVER_ARTIFACT_ROOT`,
    else MLflow's default (./mlruns); the server's read replica, if set. The bulk store where
    its writes can run (PostgreSQL through psycopg2, no workspaces); otherwise MLflow's own
    store: with another driver (psycopg 3, pg8000) COPY is not psycopg2's, and with workspaces
    on MLflow's workspace-aware store scopes what the bulk writes do not know (the fast paths
    then leave metric writes to MLflow's views).
    """
    from mlflow.environment_variables import MLFLOW_ENABLE_WORKSPACES
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.tracking._tracking_service.utils import _SERVER_ARTIFACT_ROOT_ENV_VAR

    if artifact_uri is None:
        artifact_uri = os.environ.get(
            _SERVER_ARTIFACT_ROOT_ENV_VAR, DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
        )
    db_uri = database_uri(store_uri)
    read_db_uri = _read_replica()
    if MLFLOW_ENABLE_WORKSPACES.get():
        from mlflow.store.tracking.sqlalchemy_workspace_store import (
            WorkspaceAwareSqlAlchemyStore,
        )

        return WorkspaceAwareSqlAlchemyStore(db_uri, artifact_uri, read_db_uri=read_db_uri)
    if not takes_bulk_writes(store_uri):
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        return SqlAlchemyStore(db_uri, artifact_uri, read_db_uri=read_db_uri)
    from tracking_server.bulk_store import BulkSqlAlchemyStore

    return BulkSqlAlchemyStore(db_uri, artifact_uri, read_db_uri=read_db_uri)


def registry_store(store_uri: str, tracking_uri: str | None = None) -> Any:
    """The model registry entry point for `pgbulk://` (a client's registry URI defaults to its
    tracking URI): MLflow's own registry store on the same database, as MLflow builds it."""
    from mlflow.environment_variables import MLFLOW_ENABLE_WORKSPACES
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore
    from mlflow.store.model_registry.sqlalchemy_workspace_store import (
        WorkspaceAwareSqlAlchemyStore,
    )

    store_cls = WorkspaceAwareSqlAlchemyStore if MLFLOW_ENABLE_WORKSPACES.get() else SqlAlchemyStore
    return store_cls(database_uri(store_uri), read_db_uri=_read_replica())


def scorer_store(tracking_uri: str | None = None) -> Any:
    """The scorer store entry point for `pgbulk://`: MLflow's, which uses the tracking store."""
    from mlflow.genai.scorers.registry import MlflowTrackingStore

    return MlflowTrackingStore(tracking_uri)


def check_mlflow_builds_it(backend_store_uri: str) -> None:
    """Raise unless MLflow's tracking store registry resolves this URI to `store` above: an
    entry point another package declares for the same scheme, or this one missing from the
    installed metadata, would leave the server on MLflow's store without a word."""
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    builder = _tracking_store_registry.get_store_builder(backend_store_uri)
    if builder is not store:
        found = f"{getattr(builder, '__module__', '?')}.{getattr(builder, '__qualname__', '?')}"
        raise RuntimeError(
            f"MLflow builds the tracking store for this backend URI with {found}, not the "
            f"platform's bulk store (tracking_server.store_plugin:store, entry point group "
            f"mlflow.tracking_store, names postgresql and {SCHEME})"
        )
