"""Which database URIs the bulk store serves, and the older `pgbulk://` spelling of them.

MLflow builds the bulk store for a plain PostgreSQL URI with the psycopg2 driver (the server's
`postgresql+psycopg2://`): the platform's entry point for MLflow's `postgresql` scheme
(store_plugin.py) replaces MLflow's builder, so MLflow's own view of the backend URI (the job
store, the trace-rollup start-up check, the registry and scorer stores a client derives from the
tracking URI) stays a database URI. `pgbulk://` is the same database under a name only the
platform knows; it still selects the bulk store for whoever has it configured.

Its own module so that the entry point (store_plugin) and the store (bulk_store) both use it
without importing each other, nor MLflow (SQLAlchemy only when asked about a driver).
"""

from __future__ import annotations

SCHEME = "pgbulk"
DRIVER = "postgresql+psycopg2"


def _scheme(uri: str) -> str:
    scheme, separator, _ = uri.partition("://")
    return scheme.lower() if separator else ""


def plain_uri(store_uri: str) -> str:
    """pgbulk://... -> postgresql+psycopg2://... (the same database, MLflow's own driver)."""
    scheme, separator, rest = store_uri.partition("://")
    if scheme != SCHEME or not separator:
        raise ValueError(f"not a {SCHEME}:// URI")
    return f"{DRIVER}://{rest}"


def database_uri(store_uri: str) -> str:
    """The URI MLflow's store connects with: `pgbulk://` made plain, any other unchanged."""
    return plain_uri(store_uri) if _scheme(store_uri) == SCHEME else store_uri


def takes_bulk_writes(store_uri: str) -> bool:
    """PostgreSQL through psycopg2 (the bulk writes run COPY on its cursor); `pgbulk://` too.

    `postgresql://` names no driver: SQLAlchemy's default, which is psycopg (3) from SQLAlchemy
    2.1 on, psycopg2 before; asked of SQLAlchemy rather than assumed."""
    scheme = _scheme(store_uri)
    if scheme == SCHEME:
        return True
    if scheme.partition("+")[0] != "postgresql":
        return False
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(store_uri).get_driver_name().lower() == "psycopg2"
    except ArgumentError:  # a URL or driver SQLAlchemy does not know: MLflow's store says so
        return False


def bulk_uri(plain: str) -> str:
    """postgresql...://... -> pgbulk://...: the older spelling, for configurations that have it."""
    scheme, separator, rest = plain.partition("://")
    if not scheme.startswith("postgresql") or not separator:
        raise ValueError("not a PostgreSQL URI")
    return f"{SCHEME}://{rest}"
