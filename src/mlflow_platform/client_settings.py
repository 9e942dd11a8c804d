"""The settings a team's notebook, Studio space or training job sets to use its MLflow.

One mapping of environment variable names to values, published by each team stack (an output
and an SSM parameter) and reported by `invoke local up --json` as `client_environment`, so a
data scientist sets the same names everywhere. Secrets are never in it: in basic mode the
password comes from the team secret, in iam mode credentials from the SDK's chain.

Why the artifact settings: API Gateway caps every request and response of a team API at 10 MB
and 30 s, so artifact bytes must go straight between the client and S3 through presigned URLs.
The server refuses proxied bytes (MLflow 3.18's presigned-only mode), and an MLflow 3.18 client
reads that from the server and switches by itself. An older client (3.17, as SageMaker images
may ship) does so only with these settings: multipart transfers on, for files of any size.
"""

from __future__ import annotations

# The iam-mode client: the `mlflow.request_auth_provider` entry point of client/ (the
# mlflow-platform-client distribution), chosen with MLFLOW_TRACKING_AUTH.
SIGV4_AUTH_PROVIDER = "mlflow-platform-sigv4"

ARTIFACT_SETTINGS: dict[str, str] = {
    "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "true",
    "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "true",
    "MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE": "0",
    "MLFLOW_MULTIPART_DOWNLOAD_MINIMUM_FILE_SIZE": "0",
}


def client_environment(*, tracking_uri: str, auth_mode: str) -> dict[str, str]:
    """What a client sets, beside its credentials, for a team API in this auth mode."""
    environment = {"MLFLOW_TRACKING_URI": tracking_uri, **ARTIFACT_SETTINGS}
    if auth_mode == "iam":
        environment["MLFLOW_TRACKING_AUTH"] = SIGV4_AUTH_PROVIDER
    return environment
