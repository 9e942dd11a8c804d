"""A team's artifacts are reachable only through MLflow's permission checks.

MLflow checks a proxied artifact path (`mlflow-artifacts/...`) against the experiment its
first segment names, and a `runs:`/`models:` source against the run, logged model or
registered model it names. It does not check where a stored location points: an experiment's
`artifact_location` and a model version's `source` may be any URI, and the server then reads,
writes and presigns there with its own role (another team's prefix, its own disk). So:
- an experiment gets the server's default location only (`mlflow-artifacts:/<id>`, under its
  `--artifacts-destination`); a client-chosen `artifact_location` is refused;
- a model version's source is a `runs:`, `models:` or `mlflow-artifacts:` URI, which MLflow
  checks against the caller; a prompt version keeps MLflow's placeholder rule;
- the routes that resolve a run's, logged model's or model version's stored location (read,
  list, upload, presign) refuse one that is not under its own experiment's prefix: what an
  experiment or version made before this guard may still point at.
Runs, logged models and traces take their location from their experiment; no route sets it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

SOURCE_SCHEMES = ("runs", "models", "mlflow-artifacts")
_API = re.compile(r"^/(?:api|ajax-api)/2\.0/mlflow/")
_LOGGED_MODEL_FILES = re.compile(
    r"^/(?:api|ajax-api)/2\.0/mlflow/logged-models/([^/]+)/artifacts/(?:files|directories)$"
)


def install(flask_app: Any) -> None:
    """Run after MLflow's authentication, so the caller is known and allowed first."""
    hooks = flask_app.before_request_funcs.setdefault(None, [])
    if _check not in hooks:
        hooks.append(_check)


def _check() -> Any:
    """None (go on), or MLflow's JSON error for a refused request."""
    from flask import request
    from mlflow.server.handlers import _get_request_message, catch_mlflow_exception

    # The body is parsed as the handler will parse it (snake or camel case, query or JSON).
    return catch_mlflow_exception(_route)(request, _get_request_message)


def _route(request: Any, parse: Any) -> None:
    """The rule for this request's route, if it has one."""
    from mlflow.protos.model_registry_pb2 import CreateModelVersion
    from mlflow.protos.service_pb2 import (
        CreateExperiment,
        CreatePresignedDownloadUrl,
        CreatePresignedUploadUrl,
    )

    method, path = request.method, request.path
    action = _API.sub("", path) if _API.match(path) else None
    if method == "POST" and action == "experiments/create":
        _default_location_only(parse(CreateExperiment()).artifact_location)
    elif method == "POST" and action == "model-versions/create":
        _registrable_source(parse(CreateModelVersion()))
    elif method == "POST" and action == "artifacts/presigned-upload-url":
        message = parse(CreatePresignedUploadUrl())
        if message.model_id:
            _logged_model_in_scope(message.model_id)
        elif message.run_id:
            _run_in_scope(message.run_id)
    elif method == "POST" and action == "artifacts/presigned-download-url":
        _run_in_scope(parse(CreatePresignedDownloadUrl()).run_id)
    elif (method, action) in (("GET", "artifacts/list"), ("POST", "upload-artifact")) or (
        method == "GET" and path == "/get-artifact"
    ):
        _run_in_scope(request.args.get("run_id") or request.args.get("run_uuid"))
    elif method == "GET" and path == "/model-versions/get-artifact":
        _model_version_in_scope(request.args.get("name"), request.args.get("version"))
    elif method == "GET" and (match := _LOGGED_MODEL_FILES.match(path)):
        _logged_model_in_scope(match.group(1))


def _default_location_only(location: str) -> None:
    if location:
        raise _invalid(
            f"artifact_location {location!r} is refused: an experiment's artifacts are stored "
            "at the server's default location (leave artifact_location empty), so that only "
            "MLflow's permission checks lead to them."
        )


def _registrable_source(message: Any) -> None:
    from mlflow.server.handlers import _is_prompt_request

    if _is_prompt_request(message):
        return  # MLflow allows a prompt version only its placeholder source, no location.
    if urlsplit(message.source).scheme.lower() not in SOURCE_SCHEMES:
        raise _invalid(
            f"source {message.source!r} is refused: a model version's source must be a "
            "runs:/, models:/ or mlflow-artifacts:/ URI, which MLflow checks against the "
            "caller's permissions; a storage location would bypass them."
        )


def _run_in_scope(run_id: str | None) -> None:
    from mlflow.server.handlers import _get_tracking_store

    if not run_id:
        return  # MLflow's handler refuses the request itself.
    info = _get_tracking_store().get_run(run_id).info
    _in_scope("run", run_id, info.artifact_uri, info.experiment_id)


def _logged_model_in_scope(model_id: str) -> None:
    from mlflow.server.handlers import _get_tracking_store

    model = _get_tracking_store().get_logged_model(model_id)
    _in_scope("logged model", model_id, model.artifact_location, model.experiment_id)


def _model_version_in_scope(name: str | None, version: str | None) -> None:
    from mlflow.server.handlers import _get_model_registry_store

    if not name or not version:
        return
    source = _get_model_registry_store().get_model_version_download_uri(name, version)
    scheme = urlsplit(source).scheme.lower()
    if scheme == "runs":
        from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

        _run_in_scope(RunsArtifactRepository.parse_runs_uri(source)[0])
    elif scheme not in SOURCE_SCHEMES:
        raise _denied(
            f"model version {name!r} version {version}: its source {source!r} is not a runs:/, "
            "models:/ or mlflow-artifacts:/ URI, and this server reads artifacts only through "
            "those."
        )


def _in_scope(kind: str, ident: str, location: str, experiment_id: str) -> None:
    """`location` lies under `mlflow-artifacts:/<experiment_id>/`: the destination's prefix
    that MLflow's artifact permissions guard with this experiment's grants."""
    parts = urlsplit(location)
    segments = parts.path.strip("/").split("/")
    if not (
        parts.scheme == "mlflow-artifacts"
        and not parts.netloc
        and not parts.query
        and segments[0] == str(experiment_id)
        and not any(s in ("", ".", "..") or "%" in s for s in segments)
    ):
        raise _denied(
            f"{kind} {ident!r}: its artifact location {location!r} is not under "
            f"mlflow-artifacts:/{experiment_id}/, its experiment's prefix in the server's "
            "artifact store, so the server does not read, write or sign URLs there."
        )


def _invalid(message: str) -> Exception:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _denied(message: str) -> Exception:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import PERMISSION_DENIED

    return MlflowException(message, error_code=PERMISSION_DENIED)
