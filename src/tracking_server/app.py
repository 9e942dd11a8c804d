"""The server application `mlflow server --app-name` starts in both auth modes: MLflow's
basic-auth application (identity.py says who the caller is in iam mode), with the fast paths.

MLflow finds it through an `mlflow.app` entry point (both pyproject files) and calls it in
each worker. Imports happen inside: `mlflow server` imports this module only to see that the
name is a factory.

MLflow serves its Flask application from inside a FastAPI application: a chain of ASGI
middlewares and about eighty FastAPI routes are passed before the Flask app is reached, on
the event loop's thread, which then competes with the request's worker thread for the GIL:
about 5 ms of a 20 ms log-metric call. `HotPaths` sends the two calls a training loop makes
most straight to the Flask app, through MLflow's own WSGI bridge. What those layers do for a
Flask route, Flask does too (MLflow sets it up when it runs as a server): the host check,
CORS and the cross-origin block, the security headers, authentication and permissions.

In basic mode a request whose Authorization header is not a Basic credential MLflow can look up
is answered as MLflow answers a wrong password (401 and `WWW-Authenticate: Basic`) before
MLflow's check sees it: MLflow 3.17's Flask check hands another scheme's empty user name and
password to its credential cache, whose key cannot be made of them (500 on every route), takes
user and password from another scheme's parameters (`Digest username=..., password=...`), and
sends a user name with a NUL character to PostgreSQL, which refuses it (500 with the driver's
message). A NUL in the password is refused too: RFC 7617 allows no control character in either,
and the password hash does not tell `password` from `password\0` (scrypt's HMAC pads its key
with NULs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BASIC_AUTH = "platform-basic-auth"
HOT_PATHS = frozenset({"/api/2.0/mlflow/runs/log-metric", "/api/2.0/mlflow/runs/log-batch"})
# A larger body takes MLflow's way, with whatever limits it has; a batch of 1,000 metrics
# from MLflow's client is about 100 KB.
HOT_BODY_LIMIT = 4 * 1024 * 1024


class HotPaths:
    """ASGI: POST log-metric and log-batch to `direct`, everything else to MLflow's app."""

    def __init__(self, app: Any, direct: Any) -> None:
        self.app = app
        self.direct = direct

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in HOT_PATHS
            and _content_length(scope) <= HOT_BODY_LIMIT
        ):
            await self.direct(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _content_length(scope: dict) -> int:
    """The declared body size; a body without one (chunked) counts as too large."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else HOT_BODY_LIMIT + 1
    return HOT_BODY_LIMIT + 1


def _platform_app(build: Callable[[Any], Any]) -> HotPaths:
    """MLflow's Flask app with the fast views, served by `build`'s application and directly."""
    from mlflow.server import app
    from mlflow.server.fastapi_app import _EfficientWSGIMiddleware

    from tracking_server import fast_paths
    from tracking_server.request_guard import RequestGuard

    fast_paths.install(app)
    # Both ways in pass the platform's refusals first (request_guard.py).
    return HotPaths(RequestGuard(build(app)), RequestGuard(_EfficientWSGIMiddleware(app)))


def create_basic_auth_app() -> Any:
    """MLflow's basic-auth application, as `--app-name basic-auth` builds it."""
    from mlflow.server.auth import create_app as with_basic_auth

    from tracking_server import gateway_switch, grant_names, team_users
    from tracking_server.artifact_scope import install as scope_artifacts

    def build(flask_app: Any) -> Any:
        served = with_basic_auth(flask_app)
        _refuse_unusable_credentials_first(flask_app)
        scope_artifacts(flask_app)
        team_users.install(flask_app)
        grant_names.install(flask_app)
        return served

    served = gateway_switch.wrap(_platform_app(build))
    _warm_artifact_store()
    return served


def _refuse_unusable_credentials_first(flask_app: Any) -> None:
    """Put `_refuse_unusable_credentials` just before MLflow's authentication hook."""
    from mlflow.server import auth

    hooks = flask_app.before_request_funcs.setdefault(None, [])
    if _refuse_unusable_credentials not in hooks:
        hooks.insert(hooks.index(auth._before_request), _refuse_unusable_credentials)


def _refuse_unusable_credentials() -> Any:
    """MLflow's 401 for an Authorization header that is not a Basic user and password that
    the auth database can hold; None (go on) for anything else."""
    from flask import request
    from mlflow.server import auth

    from tracking_server import identity

    if "Authorization" not in request.headers or auth.is_unprotected_route(request.path):
        return None
    if identity.from_team_api(request.headers, auth.auth_config.authorization_function):
        return None  # iam mode: API Gateway checked the signature in this header already
    credential = request.authorization
    if (
        credential is None
        or credential.type != "basic"
        or not isinstance(credential.username, str)
        or not isinstance(credential.password, str)
        or "\x00" in credential.username + credential.password
    ):
        return auth.make_basic_auth_response()
    return None


def _warm_artifact_store() -> None:
    """Build this worker's S3 client now, not on a client's first artifact request: botocore
    takes about a second to load S3's service model, which a presigned upload then waited for
    (bench/artifacts.py). A failure here is left for the request to report."""
    import os

    if not os.environ.get("MLFLOW_ARTIFACTS_DESTINATION", "").startswith("s3://"):
        return
    try:
        from mlflow.server.handlers import _get_artifact_repo_mlflow_artifacts

        repository = _get_artifact_repo_mlflow_artifacts()
        getattr(repository, "_get_s3_client", lambda: None)()
    except Exception:  # best effort: the request path reports real errors
        return
