"""AWS credentials current at each request, from botocore's default credential chain.

A training job runs for hours on role credentials that expire and are replaced. Credentials
the SDK can refresh (a role, the container or instance credentials, SSO) are kept and asked for
a frozen copy at every request, which botocore renews before they expire. Static ones (the
environment, a credentials file) are looked up in the chain again at every request, so that
rewriting the file or the environment takes effect at the next request too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import botocore.session
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials


class NoCredentialsFound(RuntimeError):
    """botocore's default chain found nothing to sign with."""


class CredentialSource:
    """Callable: the frozen credentials to sign the next request with."""

    def __init__(self, resolve: Callable[[], Credentials | None] | None = None) -> None:
        self._lock = threading.Lock()
        self._session: botocore.session.Session | None = None
        self._resolve = resolve or self._from_chain
        self._refreshable: RefreshableCredentials | None = None

    def __call__(self) -> ReadOnlyCredentials:
        held = self._refreshable
        if held is not None:
            return held.get_frozen_credentials()
        found = self._resolve()
        if found is None:
            raise NoCredentialsFound(
                "no AWS credentials found by botocore's default chain (environment, "
                "AWS_PROFILE, container or instance role): MLFLOW_TRACKING_AUTH="
                "mlflow-platform-sigv4 signs with them"
            )
        if isinstance(found, RefreshableCredentials):
            with self._lock:
                self._refreshable = found
        return found.get_frozen_credentials()

    def configured_region(self) -> str | None:
        """The region of the AWS configuration (profile), for a custom-domain tracking URI."""
        region = self._botocore().get_config_variable("region")
        return str(region) if region else None

    def _botocore(self) -> botocore.session.Session:
        with self._lock:
            if self._session is None:
                self._session = botocore.session.Session()
            return self._session

    def _from_chain(self) -> Credentials | None:
        # The resolver reads the environment and the files again on each call (~30 µs).
        resolver = self._botocore().get_component("credential_provider")
        credentials: Credentials | None = resolver.load_credentials()
        return credentials
