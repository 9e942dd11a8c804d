"""The names of the settings the tracking server container receives.

The environment template writes these names into the task definition and the entrypoint reads
them, so both import them from here. Names under SECRETS arrive as ECS secrets from Secrets
Manager, never as plain environment variables in the task definition.
"""

from __future__ import annotations

PORT = 5000
HEALTH_PATH = "/health"

AUTH_MODE = "MLFLOW_PLATFORM_AUTH_MODE"
AUTH_MODES = ("basic", "iam")
DB_HOST = "MLFLOW_PLATFORM_DB_HOST"
DB_PORT = "MLFLOW_PLATFORM_DB_PORT"
DB_NAME = "MLFLOW_PLATFORM_DB_NAME"
ARTIFACTS_DESTINATION = "MLFLOW_PLATFORM_ARTIFACTS_DESTINATION"
ALLOWED_HOSTS = "MLFLOW_PLATFORM_ALLOWED_HOSTS"

DB_USERNAME = "MLFLOW_PLATFORM_DB_USERNAME"
DB_PASSWORD = "MLFLOW_PLATFORM_DB_PASSWORD"
ADMIN_USERNAME = "MLFLOW_PLATFORM_ADMIN_USERNAME"
ADMIN_PASSWORD = "MLFLOW_PLATFORM_ADMIN_PASSWORD"
SECRET_KEY = "MLFLOW_PLATFORM_SECRET_KEY"

SECRETS = (DB_USERNAME, DB_PASSWORD, ADMIN_USERNAME, ADMIN_PASSWORD, SECRET_KEY)
