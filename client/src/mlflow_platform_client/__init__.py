"""Signs MLflow's requests to a team API of an `iam` environment with SigV4 (`execute-api`).

MLflow finds the provider through its `mlflow.request_auth_provider` entry point and uses it when
`MLFLOW_TRACKING_AUTH=mlflow-platform-sigv4`. Importing this package does not import MLflow.
"""

from __future__ import annotations

from mlflow_platform_client.auth import SERVICE, SigningError, SigV4ExecuteApiAuth
from mlflow_platform_client.body import BUFFER_LIMIT, BodyError
from mlflow_platform_client.credentials import CredentialSource, NoCredentialsFound
from mlflow_platform_client.region import RegionError, region_for

NAME = "mlflow-platform-sigv4"
"""The entry point's name: the value of MLFLOW_TRACKING_AUTH."""

__all__ = [
    "BUFFER_LIMIT",
    "NAME",
    "SERVICE",
    "BodyError",
    "CredentialSource",
    "NoCredentialsFound",
    "RegionError",
    "SigV4ExecuteApiAuth",
    "SigningError",
    "region_for",
]
