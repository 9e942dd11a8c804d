"""The server applications `mlflow server --app-name` starts: MLflow's, with the fast paths.

MLflow finds them through `mlflow.app` entry points (both pyproject files) and calls them in
each worker. Imports happen inside: `mlflow server` imports this module only to see that the
names are factories.

MLflow serves its Flask application from inside a FastAPI application: a chain of ASGI
middlewares and about eighty FastAPI routes are passed before the Flask app is reached, on
the event loop's thread, which then competes with the request's worker thread for the GIL:
about 5 ms of a 20 ms log-metric call. `HotPaths` sends the two calls a training loop makes
most straight to the Flask app, through MLflow's own WSGI bridge. What those layers do for a
Flask route, Flask does too (MLflow sets it up when it runs as a server): the host check,
CORS and the cross-origin block, the security headers, authentication and permissions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BASIC_AUTH = "platform-basic-auth"
OPEN = "platform"
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

    fast_paths.install(app)
    return HotPaths(build(app), _EfficientWSGIMiddleware(app))


def create_app() -> HotPaths:
    """MLflow's application without MLflow's own auth (the `iam` mode: API Gateway checks)."""
    from mlflow.server.fastapi_app import create_fastapi_app

    return _platform_app(create_fastapi_app)


def create_basic_auth_app() -> HotPaths:
    """MLflow's basic-auth application, as `--app-name basic-auth` builds it."""
    from mlflow.server.auth import create_app as with_basic_auth

    return _platform_app(with_basic_auth)
