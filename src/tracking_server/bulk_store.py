"""MLflow's SQLAlchemy tracking store with metric writes made of a few statements on PostgreSQL.

MLflow's own store builds an ORM object per metric and locks, compares and merges the run's
latest values in Python: about 0.26 s for a batch of 1,000 metrics and 10 ms for one metric on
these machines. Here the rows go in with COPY, no SQL to parse per row; where a row exists
already (the metrics table's key covers every column, and MLflow ignores a repeated metric) the
batch goes again through a temporary table with INSERT ... ON CONFLICT DO NOTHING. The latest
values go in as one upsert of one row per key: the batch's greatest (step, timestamp, value),
MLflow's own ordering, which replaces the stored row only where it is greater. The upsert takes
the same row locks MLflow takes, in key order, inside the same transaction. On 1,000 metrics,
PostgreSQL takes 31 ms for the COPY, 42 ms through the temporary table and 76 ms for one
multi-row INSERT.

These statements run on the raw psycopg2 cursor (COPY has no SQLAlchemy form), whose errors
MLflow's store does not recognise: a deadlock was not retried and reached the client as an
internal error. So each is raised as the exception SQLAlchemy raises for the same error from
its own statement (`DBAPIError.instance`, the connection invalidated if it is gone), and MLflow
treats it as it treats its own: its managed session turns an OperationalError (a deadlock, a
serialization failure, a lost connection) into TEMPORARILY_UNAVAILABLE and other database
errors into BAD_REQUEST, and `_run_with_deadlock_retry` (around every metric write here, as in
MLflow's store) runs the write again when the message says deadlock, with MLflow's attempts
and back-off.

Integers go into SQL as parenthesized literals: PostgreSQL reads `-9223372036854775808::bigint`
as `-(9223372036854775808::bigint)`, and that cast overflows.

Anything unusual (a timestamp or step that is not an int) goes through MLflow's own code, and
everything but metric writes is MLflow's. MLflow builds this store for the server's plain
PostgreSQL URI through the platform's entry point for its `postgresql` scheme (store_plugin.py);
it takes MLflow's store's parameters, so MLflow code that builds its store by keyword builds this
one the same way, with a plain URI or the older `pgbulk://` spelling (store_uri.py).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import psycopg2.errors
import sqlalchemy
import sqlalchemy.exc
from mlflow.entities import LifecycleStage, Metric
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.utils.validation import _validate_metric
from psycopg2.extras import execute_values

from tracking_server.store_uri import database_uri, takes_bulk_writes

MetricValue = tuple[str, float, int, int]
"""key, value, timestamp, step: a metric as the fast request path hands it over."""

_COLUMNS = "(key, value, timestamp, step, is_nan, run_uuid)"
_COPY_METRICS = f"COPY metrics {_COLUMNS} FROM STDIN"
_STAGING = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS mlflow_platform_metrics_in (key varchar(250), "
    "value double precision, timestamp bigint, step bigint, is_nan boolean, run_uuid "
    "varchar(32)) ON COMMIT DELETE ROWS"
)
_COPY_STAGED = f"COPY mlflow_platform_metrics_in {_COLUMNS} FROM STDIN"
_INSERT_STAGED = (
    f"INSERT INTO metrics {_COLUMNS} SELECT {_COLUMNS[1:-1]} FROM mlflow_platform_metrics_in "
    "ON CONFLICT DO NOTHING"
)
_ROW = "(%s, (%s)::double precision, (%s)::bigint, (%s)::bigint, %s::boolean, %s)"
_UPSERT_LATEST = (
    "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES %s "
    "ON CONFLICT (key, run_uuid) DO UPDATE SET value = EXCLUDED.value, "
    "timestamp = EXCLUDED.timestamp, step = EXCLUDED.step, is_nan = EXCLUDED.is_nan "
    "WHERE (EXCLUDED.step, EXCLUDED.timestamp, EXCLUDED.value) > "
    "(latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)"
)
_RUN_STAGE = "SELECT lifecycle_stage FROM runs WHERE run_uuid = %s"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _insert_metrics(cursor: Any, run_id: str, copy: str) -> None:
    """COPY straight into the table (31 ms for 1,000 rows); where a row is there already, the
    whole batch again through the staging table, which skips what exists (42 ms)."""
    cursor.execute("SAVEPOINT mlflow_platform_metrics")
    try:
        cursor.copy_expert(_COPY_METRICS, io.StringIO(copy))
    except psycopg2.errors.UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT mlflow_platform_metrics")
        cursor.execute(_STAGING)
        cursor.copy_expert(_COPY_STAGED, io.StringIO(copy))
        cursor.execute(_INSERT_STAGED)


class BulkSqlAlchemyStore(SqlAlchemyStore):
    def __init__(
        self, db_uri: str, default_artifact_root: str | None, read_db_uri: str | None = None
    ) -> None:
        """MLflow's SqlAlchemyStore's parameters, names and order; PostgreSQL through psycopg2
        only (the bulk writes use its cursor)."""
        if not takes_bulk_writes(db_uri):
            raise ValueError(
                "the bulk metric store needs a PostgreSQL URI with the psycopg2 driver "
                "(postgresql+psycopg2://)"
            )
        super().__init__(
            database_uri(db_uri),
            default_artifact_root,
            read_db_uri=database_uri(read_db_uri) if read_db_uri else read_db_uri,
        )

    def log_metric_values(self, run_id: str, values: Sequence[MetricValue]) -> None:
        """What MLflow's log_metric and log_batch do with metrics that name no model or dataset.

        The values have passed MLflow's `_validate_metric` (fast_paths.py checks them first).
        """
        self._run_with_deadlock_retry(self._write_metrics, run_id, values, validate=False)

    def _log_metrics_once(self, run_id: str, metrics: list[Metric]) -> None:
        values = [(m.key, m.value, m.timestamp, m.step) for m in metrics]
        if any(type(v[2]) is not int or type(v[3]) is not int for v in values):
            super()._log_metrics_once(run_id, metrics)
            return
        self._write_metrics(run_id, values, validate=True)

    def _write_metrics(self, run_id: str, values: Sequence[MetricValue], *, validate: bool) -> None:
        rows: dict[tuple, None] = {}
        latest: dict[str, tuple] = {}
        single = len(values) == 1
        for index, (key, value, timestamp, step) in enumerate(values):
            if validate:
                _validate_metric(
                    key, value, timestamp, step, path="" if single else f"metrics[{index}]"
                )
            is_nan, value = self.sanitize_metric_value(value)
            row = (key, float(value), timestamp, step, is_nan)
            rows[row] = None
            best = latest.get(key)
            if best is None or (step, timestamp, row[1]) > (best[3], best[2], best[1]):
                latest[key] = row
        if not rows:
            return
        run = run_id.translate(_COPY_ESCAPES)
        copy = "".join(
            f"{key.translate(_COPY_ESCAPES)}\t{value!r}\t{timestamp}\t{step}\t"
            f"{'t' if nan else 'f'}\t{run}\n"
            for key, value, timestamp, step, nan in rows
        )
        with self.ManagedSessionMaker(read_only=False) as session:
            connection = session.connection()
            cursor = connection.connection.cursor()
            statement = _RUN_STAGE
            try:
                cursor.execute(_RUN_STAGE, (run_id,))
                if cursor.fetchall() != [(LifecycleStage.ACTIVE,)]:
                    # Missing, deleted or duplicated: MLflow's own checks say which, as it would.
                    self._check_run_is_active(self._get_run(run_uuid=run_id, session=session))
                statement = _COPY_METRICS
                _insert_metrics(cursor, run_id, copy)
                statement = _UPSERT_LATEST
                execute_values(
                    cursor,
                    _UPSERT_LATEST,
                    [(*latest[k], run_id) for k in sorted(latest)],
                    template=_ROW,
                )
            except psycopg2.Error as error:
                raise _as_sqlalchemy_error(error, statement, connection, cursor) from error
            finally:
                cursor.close()
            session.commit()


def _as_sqlalchemy_error(
    error: psycopg2.Error, statement: str, connection: sqlalchemy.Connection, cursor: Any
) -> BaseException:
    """What SQLAlchemy raises for this error from a statement it runs itself (parameters left
    out), the connection invalidated if it is gone: MLflow's session and retry recognise it."""
    dialect = connection.dialect
    gone = dialect.is_disconnect(error, connection.connection.dbapi_connection, cursor)
    if gone:
        connection.invalidate(error)
    return sqlalchemy.exc.DBAPIError.instance(
        statement,
        None,
        error,
        psycopg2.Error,
        hide_parameters=True,
        connection_invalidated=gone,
        dialect=dialect,
    )
