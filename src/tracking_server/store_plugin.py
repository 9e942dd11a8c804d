"""How MLflow reaches the bulk metric store: the `pgbulk://` scheme and its entry point.

MLflow loads `mlflow.tracking_store` entry points while `mlflow.tracking` is still importing,
so this module imports nothing from MLflow; the store itself is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracking_server.bulk_store import BulkSqlAlchemyStore

SCHEME = "pgbulk"
DRIVER = "postgresql+psycopg2"


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


def store(store_uri: str, artifact_uri: str | None = None) -> BulkSqlAlchemyStore:
    """The entry point: MLflow calls it with these keywords."""
    from tracking_server.bulk_store import BulkSqlAlchemyStore

    return BulkSqlAlchemyStore(store_uri, artifact_uri)
