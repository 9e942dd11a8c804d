"""The `pgbulk://` scheme: MLflow's PostgreSQL URI under a name that selects the bulk store.

Its own module so that the entry point (store_plugin) and the store (bulk_store) both use it
without importing each other.
"""

from __future__ import annotations

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
