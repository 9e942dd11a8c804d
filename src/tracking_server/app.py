"""The server applications `mlflow server --app-name` starts: MLflow's, with the fast paths.

MLflow finds them through `mlflow.app` entry points (both pyproject files) and calls them in
each worker. Imports happen inside: `mlflow server` imports this module only to see that the
names are factories.
"""

from __future__ import annotations

from typing import Any

BASIC_AUTH = "platform-basic-auth"
OPEN = "platform"


def create_app() -> Any:
    """MLflow's application without MLflow's own auth (the `iam` mode: API Gateway checks)."""
    from mlflow.server import app
    from mlflow.server.fastapi_app import create_fastapi_app

    from tracking_server import fast_paths

    fast_paths.install(app)
    return create_fastapi_app(app)


def create_basic_auth_app() -> Any:
    """MLflow's basic-auth application, as `--app-name basic-auth` builds it."""
    from mlflow.server import app
    from mlflow.server.auth import create_app as with_basic_auth

    from tracking_server import fast_paths

    fast_paths.install(app)
    return with_basic_auth(app)
