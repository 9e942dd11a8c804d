"""MLflow's side: the `mlflow.request_auth_provider` entry point `mlflow-platform-sigv4`.

MLflow instantiates the provider once, when it loads its plug-ins, and calls `get_auth` for
every request when MLFLOW_TRACKING_AUTH names it (mlflow/tracking/request_auth/registry.py,
mlflow/utils/rest_utils.py). The provider holds the credential source, so that credentials the
SDK refreshes are kept from one request to the next.
"""

from __future__ import annotations

from mlflow.tracking.request_auth.abstract_request_auth_provider import RequestAuthProvider

from mlflow_platform_client import NAME
from mlflow_platform_client.auth import Origin, SigningError, SigV4ExecuteApiAuth, origin_of
from mlflow_platform_client.credentials import CredentialSource
from mlflow_platform_client.region import region_for


class SigV4AuthProvider(RequestAuthProvider):
    def __init__(self, credentials: CredentialSource | None = None) -> None:
        self._credentials = credentials or CredentialSource()

    def get_name(self) -> str:
        return NAME

    def get_auth(self) -> SigV4ExecuteApiAuth:
        source = self._credentials
        return SigV4ExecuteApiAuth(
            credentials=source,
            region=lambda url: region_for(url, configured=source.configured_region),
            allowed=mlflow_origins,
        )


def mlflow_origins() -> set[Origin]:
    """The origins of MLflow's tracking and registry URIs, as they are set now (none when
    neither is http(s): then MLflow sends no tracking request with this auth)."""
    import mlflow

    found: set[Origin] = set()
    for uri in (mlflow.get_tracking_uri(), mlflow.get_registry_uri()):
        try:
            found.add(origin_of(uri))
        except SigningError:
            continue
    return found
