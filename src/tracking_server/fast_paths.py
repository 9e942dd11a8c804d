"""Fast request paths for the two calls a training loop makes most: log-metric and log-batch.

MLflow turns each request into a protobuf message (about 42 ms for 1,000 metrics), then into
one Metric object per metric, before its store sees them. These views read the JSON that
MLflow's own client sends, check it against the same rules (MLflow's validation functions),
and hand plain values to the bulk store. They replace only the view functions: MLflow's
before-request hooks (authentication, the permission check on the run, host checks) run as
before, and its error handling wraps them.

Only the plain shape is taken: exactly the fields of a metric without model or dataset, JSON
numbers (or MLflow's "NaN" and "Infinity" strings) where the message has numbers, no params or
tags in a batch. Anything else, anything invalid, and every store other than the bulk store,
goes to MLflow's own view, unchanged, so errors and unusual requests are answered as MLflow
answers them. One exception: when the database fails a write these views hand it, the client is
told that the server failed (500, or 503 where MLflow would say the database is temporarily
unavailable, so that clients retry), and the database's own words go to the server's log only:
the request was checked already, so they describe the server, not the request.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable
from typing import Any

import psycopg2
import sqlalchemy.exc
from flask import Flask, Response, request
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, TEMPORARILY_UNAVAILABLE, ErrorCode
from mlflow.server import ARTIFACTS_ONLY_ENV_VAR, handlers
from mlflow.utils.validation import MAX_METRICS_PER_BATCH, _validate_metric, _validate_run_id

from tracking_server.bulk_store import BulkSqlAlchemyStore, MetricValue

_INT64 = (-(2**63), 2**63 - 1)
# How MLflow's client (protobuf's JSON form) writes the doubles JSON has no number for.
_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_METRIC_FIELDS = frozenset({"key", "value", "timestamp", "step"})
_LOG_METRIC_FIELDS = frozenset({"run_id", "run_uuid", *_METRIC_FIELDS})
_LOG_BATCH_FIELDS = frozenset({"run_id", "metrics", "params", "tags"})
_logger = logging.getLogger(__name__)


class NotPlain(Exception):
    """The request is for MLflow's own view."""


def _double(value: Any) -> float:
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            raise NotPlain from None
    if kind is str and value in _SPECIAL:
        return _SPECIAL[value]
    raise NotPlain


def _int64(value: Any) -> int:
    if type(value) is not int or not _INT64[0] <= value <= _INT64[1]:
        raise NotPlain
    return value


def _metrics(items: list, paths: bool) -> list[MetricValue]:
    """The metrics, each checked by MLflow's `_validate_metric`.

    A value here is always a float and timestamp and step ints, so of MLflow's checks only
    the name's (charset, path form, length) and timestamp >= 0 can fail: the name is checked
    once per distinct key.
    """
    metrics: list[MetricValue] = []
    checked: set[str] = set()
    for index, fields in enumerate(items):
        if type(fields) is not dict or not fields.keys() <= _METRIC_FIELDS:
            raise NotPlain
        key = fields.get("key")
        if type(key) is not str or not key or "value" not in fields or "timestamp" not in fields:
            raise NotPlain
        metric = (
            key,
            _double(fields["value"]),
            _int64(fields["timestamp"]),
            _int64(fields.get("step", 0)),
        )
        if key in checked:
            if metric[2] < 0:
                raise NotPlain
        else:
            try:
                _validate_metric(*metric, path=f"metrics[{index}]" if paths else "")
            except MlflowException:
                raise NotPlain from None
            checked.add(key)
        metrics.append(metric)
    return metrics


def _run_id(body: dict) -> str:
    run_id = body.get("run_id")
    if type(run_id) is not str or not run_id:
        raise NotPlain
    try:
        _validate_run_id(run_id)
    except MlflowException:
        raise NotPlain from None
    return run_id


def parse_log_metric(body: Any) -> tuple[str, list[MetricValue]]:
    """run id and metric of a plain LogMetric body; NotPlain otherwise."""
    if type(body) is not dict or not body.keys() <= _LOG_METRIC_FIELDS:
        raise NotPlain
    run_id = _run_id(body)
    if "run_uuid" in body and body["run_uuid"] != run_id:
        raise NotPlain
    fields = {k: v for k, v in body.items() if k in _METRIC_FIELDS}
    return run_id, _metrics([fields], paths=False)


def parse_log_batch(body: Any) -> tuple[str, list[MetricValue]]:
    """run id and metrics of a plain LogBatch body; NotPlain otherwise."""
    if type(body) is not dict or not body.keys() <= _LOG_BATCH_FIELDS:
        raise NotPlain
    metrics = body.get("metrics")
    if body.get("params", []) != [] or body.get("tags", []) != [] or type(metrics) is not list:
        raise NotPlain
    if not 0 < len(metrics) <= MAX_METRICS_PER_BATCH:
        raise NotPlain
    run_id = _run_id(body)
    return run_id, _metrics(metrics, paths=True)


def _fast_view(
    original: Callable[[], Response],
    parse: Callable[[Any], tuple[str, list[MetricValue]]],
) -> Callable[[], Response]:
    @functools.wraps(original)
    @handlers.catch_mlflow_exception
    def view() -> Response:
        store = handlers._get_tracking_store()
        if (
            not isinstance(store, BulkSqlAlchemyStore)
            or request.mimetype != "application/json"
            or os.environ.get(ARTIFACTS_ONLY_ENV_VAR)
        ):
            return original()
        try:
            run_id, values = parse(request.get_json(silent=True))
        except NotPlain:
            return original()
        try:
            store.log_metric_values(run_id, values)
        except MlflowException as error:
            if error.get_http_status_code() < 500 and not _from_database(error):
                raise  # MLflow's own answer: no such run, a deleted run
            raise _server_fault(error) from None
        except Exception as error:
            raise _server_fault(error) from None
        return Response("{}", mimetype="application/json")

    return view


def _from_database(error: BaseException) -> bool:
    """Whether the error wraps one the database driver raised (MLflow's session wraps them)."""
    cause = error.__cause__
    while cause is not None:
        if isinstance(cause, sqlalchemy.exc.SQLAlchemyError | psycopg2.Error):
            return True
        cause = cause.__cause__
    return False


def _server_fault(error: BaseException) -> MlflowException:
    """The answer for a write the server could not make: the details go to the log only."""
    _logger.error("writing metrics failed", exc_info=error)
    unavailable = ErrorCode.Name(TEMPORARILY_UNAVAILABLE)
    if isinstance(error, MlflowException) and error.error_code == unavailable:
        return MlflowException(
            "The tracking database is temporarily unavailable; retry the request.",
            TEMPORARILY_UNAVAILABLE,
        )
    return MlflowException(
        "The server could not store the metrics; its log has the details.", INTERNAL_ERROR
    )


def install(app: Flask) -> None:
    """Put the fast views in front of MLflow's log-metric and log-batch views."""
    for endpoint, parse in (("_log_metric", parse_log_metric), ("_log_batch", parse_log_batch)):
        original = app.view_functions[endpoint]
        if getattr(original, "fast_path", False):
            continue
        view = _fast_view(original, parse)  # type: ignore[arg-type]  # Flask types views widely
        view.fast_path = True  # type: ignore[attr-defined]
        app.view_functions[endpoint] = view
