"""MLflow's AI gateway, off unless the environment turns it on.

The gateway stores teams' provider keys and makes the server call the URLs and credential
endpoints they configure: a team can make the server fetch a URL of its choice and read the
answer (the gateway's URL policy checks `api_base` only), and endpoints may log traces into an
experiment that the creator could not write to. Until that is safe, the platform answers every
gateway route itself, before MLflow's routing, in both auth modes.

Every gateway route MLflow 3.18 serves has a path segment that starts with `gateway`: the REST
and ajax routes under `/mlflow/gateway/`, `/ajax-api/2.0/mlflow/gateway-proxy` and the
invocation routes under `/gateway/`. A path is refused when any of its segments does, case
aside, so a spelling that some router folds differently is refused too; and so are the MLflow
Assistant's routes (`/ajax-api/3.0/mlflow/assistant/`), which configure and run an AI provider
for the caller and which MLflow means for a server on the user's own machine.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tracking_server.settings import AI_GATEWAY

MESSAGE = (
    "MLflow's AI gateway is off on this platform; the environment's AiGateway input turns it on"
)


def is_gateway_path(path: str) -> bool:
    """A gateway route, or the MLflow Assistant's, which runs a provider (an LLM client, or a
    local agent process) for the caller: no use on a shared server, and the gateway's kin."""
    return any(
        segment.lower().startswith("gateway") or segment.lower() == "assistant"
        for segment in path.split("/")
    )


class GatewayOff:
    """ASGI: 403 FEATURE_DISABLED for every gateway route, everything else to `app`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and is_gateway_path(scope.get("path", "")):
            body = json.dumps({"error_code": "FEATURE_DISABLED", "message": MESSAGE}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def wrap(app: Any) -> Any:
    """`app` behind the switch, as the server's settings say (entrypoint sets AI_GATEWAY)."""
    return app if os.environ.get(AI_GATEWAY) == "on" else GatewayOff(app)
