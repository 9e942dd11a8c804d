"""A team API of an `iam` environment on loopback, for tests that need one of their own: the
local platform's team API (mlflow_platform/local/team_api.py), which does what API Gateway does
before the server: its quotas and status codes, the SigV4 check (service `execute-api`, with
botocore's own signer, for the credentials given here) and the integration's header mappings
(Host, the verified caller, the routes' authorization type, the domain). It records each
verified caller in `forwarded`. It verifies; it never signs.
"""

from __future__ import annotations

import urllib.parse

from mlflow_platform.local import team_api
from mlflow_platform.local.team_api import Caller, TeamApi, TeamApiConfig

__all__ = ["MISMATCH", "MISSING", "Caller", "Gateway", "port_of", "verify"]

MISSING = team_api.MISSING[1]
MISMATCH = team_api.MISMATCH[1]


def verify(
    method: str, url: str, headers: dict[str, str], body: bytes, callers: dict[str, Caller]
) -> Caller | str:
    """The caller whose credentials signed this request, or API Gateway's refusal message."""
    checked = team_api.verify(method, url, headers, body, callers)
    return checked if isinstance(checked, Caller) else checked[1]


class Gateway(TeamApi):
    """Serves on 127.0.0.1, forwarding verified requests to the tracking server's port."""

    def __init__(
        self, *, target_port: int, host: str, callers: dict[str, Caller], region: str = "us-east-1"
    ) -> None:
        self.forwarded: list[str] = []
        self.callers = callers
        super().__init__(
            TeamApiConfig(auth_mode="iam", target_port=target_port, host=host, callers=callers,
                          region=region)
        )  # fmt: skip
        self.serve_in_background()

    def mappings(self, *, domain: str, caller: str | None) -> list[tuple[str, str]]:
        if caller:
            self.forwarded.append(caller)
        return super().mappings(domain=domain, caller=caller)


def port_of(url: str) -> int:
    port = urllib.parse.urlsplit(url).port
    assert port is not None
    return port
