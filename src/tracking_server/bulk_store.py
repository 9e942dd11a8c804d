"""MLflow's SQLAlchemy tracking store with metric writes made of two statements on PostgreSQL.

MLflow's own store builds an ORM object per metric and locks, compares and merges the run's
latest values in Python: about 0.26 s for a batch of 1,000 metrics and 10 ms for one metric on
these machines. Here the same rows go in as one multi-row INSERT ... ON CONFLICT DO NOTHING (the
metrics table's key covers every column, so a repeated metric is ignored as MLflow ignores it),
and the latest values as one upsert of one row per key: the batch's greatest (step, timestamp,
value), MLflow's own ordering, which replaces the stored row only where it is greater. The
upsert takes the same row locks MLflow takes, in key order, inside the same transaction;
MLflow's deadlock retry still wraps it. Everything else is MLflow's.

The server reaches it through the `pgbulk://` scheme (store_plugin.py); the model registry
and migrations keep the plain PostgreSQL URI.
"""

from __future__ import annotations

from mlflow.entities import Metric
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.utils.validation import _validate_metric
from psycopg2.extras import execute_values

from tracking_server.store_plugin import plain_uri

_ROW = "(%s, %s::double precision, %s::bigint, %s::bigint, %s::boolean, %s)"
_INSERT_METRICS = (
    "INSERT INTO metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES %s "
    "ON CONFLICT DO NOTHING"
)
_UPSERT_LATEST = (
    "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES %s "
    "ON CONFLICT (key, run_uuid) DO UPDATE SET value = EXCLUDED.value, "
    "timestamp = EXCLUDED.timestamp, step = EXCLUDED.step, is_nan = EXCLUDED.is_nan "
    "WHERE (EXCLUDED.step, EXCLUDED.timestamp, EXCLUDED.value) > "
    "(latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)"
)


class BulkSqlAlchemyStore(SqlAlchemyStore):
    def __init__(self, store_uri: str, artifact_uri: str | None) -> None:
        super().__init__(plain_uri(store_uri), artifact_uri)

    def _log_metrics_once(self, run_id: str, metrics: list[Metric]) -> None:
        rows: dict[tuple, None] = {}
        latest: dict[str, tuple] = {}
        single = len(metrics) == 1
        for index, metric in enumerate(metrics):
            _validate_metric(
                metric.key,
                metric.value,
                metric.timestamp,
                metric.step,
                path="" if single else f"metrics[{index}]",
            )
            is_nan, value = self.sanitize_metric_value(metric.value)
            row = (metric.key, value, metric.timestamp, metric.step, is_nan, run_id)
            rows[row] = None
            best = latest.get(metric.key)
            if best is None or (row[3], row[2], row[1]) > (best[3], best[2], best[1]):
                latest[metric.key] = row
        if not rows:
            return
        with self.ManagedSessionMaker(read_only=False) as session:
            self._check_run_is_active(self._get_run(run_uuid=run_id, session=session))
            cursor = session.connection().connection.cursor()
            try:
                execute_values(cursor, _INSERT_METRICS, list(rows), template=_ROW, page_size=10_000)
                execute_values(
                    cursor, _UPSERT_LATEST, [latest[k] for k in sorted(latest)], template=_ROW
                )
            finally:
                cursor.close()
            session.commit()
