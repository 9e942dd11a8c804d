"""Requests refused at the server's ASGI door, before any of MLflow's layers sees them.

Each check sits here, around everything `mlflow server` serves (MLflow's FastAPI middlewares
and routes, its Flask app, and the fast paths of app.py), because what it looks at is changed
or lost further in:

- **An alias of the caller header.** WSGI turns both `X-Mlflow-Platform-Caller` and
  `X_Mlflow_Platform_Caller` into `HTTP_X_MLFLOW_PLATFORM_CALLER` (PEP 3333 takes header
  names as CGI does), so Flask reads either as the caller header, and joins them when both
  come. API Gateway overwrites only the hyphenated name. A header whose name is the caller
  header's once underscores are read as hyphens, but is not it, is refused (400). Case is no
  difference: header names are case-insensitive (RFC 9110, 5.1).
- **A team API deployed for the other AuthMode.** Every team API states its routes'
  authorization type (ROUTE_AUTHORIZATION_HEADER, a fixed value overwritten on every request);
  the environment's AuthMode may have changed since. iam mode refuses a team API whose routes
  are not AWS_IAM: API Gateway verified no one there, so no caller header from it can be
  trusted. basic mode refuses one whose routes are AWS_IAM, or any caller named in the caller
  header (only an AWS_IAM route names one). Both 403 until the team stack is updated. A
  request without the header (the team-user function, or a team API older than the header)
  goes on to the other checks: identity.py in iam mode still wants a caller or the admin.
- **Another origin's page.** MLflow 3.18 answers every loopback Origin with credentialed CORS
  and exempts it from its cross-origin block (mlflow/server/security_utils.py,
  LOCALHOST_ORIGIN_PATTERNS): a page on any local port could use a signed-in browser's Basic
  credentials. Here a request with an Origin is served only from the team API's own origin
  (https:// and the domain the team API states in DOMAIN_HEADER), the server's own address
  when nothing is in front of it (`invoke local`), or an origin listed in CORS_ALLOWED_ORIGINS
  (MLflow's own setting, which then answers it with CORS as MLflow does); any other is
  refused (403), loopback included. A same-origin request goes on without its Origin, so
  that MLflow's own cross-origin block, which knows neither of those origins, does not
  refuse the UI's own POSTs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from tracking_server.settings import (
    AUTH_MODE,
    AUTH_MODES,
    CALLER_HEADER,
    CORS_ALLOWED_ORIGINS,
    DOMAIN_HEADER,
    ROUTE_AUTHORIZATION_BY_MODE,
    ROUTE_AUTHORIZATION_HEADER,
)

_CALLER = CALLER_HEADER.lower().encode()
_ROUTE = ROUTE_AUTHORIZATION_HEADER.lower().encode()
_DOMAIN = DOMAIN_HEADER.lower().encode()

Headers = list[tuple[bytes, bytes]]


class RequestGuard:
    """ASGI: `refusal`'s answer for a refused request, `app` for every other."""

    def __init__(self, app: Any, *, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.auth_mode = env.get(AUTH_MODE, "")
        if self.auth_mode not in AUTH_MODES:
            raise ValueError(
                f"{AUTH_MODE}={self.auth_mode!r}: must be one of {', '.join(AUTH_MODES)}"
            )
        self.allowed_origins = frozenset(
            o.strip().lower() for o in env.get(CORS_ALLOWED_ORIGINS, "").split(",") if o.strip()
        )
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refused = refusal(scope["headers"], self.auth_mode, self.allowed_origins)
            if refused is not None:
                await _answer(send, *refused)
                return
            if _same_origin(scope["headers"], self.allowed_origins):
                scope = dict(scope, headers=[h for h in scope["headers"] if h[0] != b"origin"])
        await self.app(scope, receive, send)


def refusal(
    headers: Headers, auth_mode: str, allowed_origins: frozenset[str]
) -> tuple[int, str] | None:
    """(status, reason) for a request this server does not serve; None for any other."""
    for name, _ in headers:
        if name.lower() != _CALLER and name.lower().replace(b"_", b"-") == _CALLER:
            return 400, (
                f"header {name.decode('latin-1')!r}: the caller header is {CALLER_HEADER}, "
                "with hyphens; a header of that name with underscores is refused (API Gateway "
                "overwrites only the real one, and the server would read both as one)"
            )
    route = _values(headers, _ROUTE)
    expected = ROUTE_AUTHORIZATION_BY_MODE[auth_mode]
    if route and route != [expected]:
        shown = route[0] if len(route) == 1 else ",".join(route)
        return 403, (
            f"{ROUTE_AUTHORIZATION_HEADER} = {shown!r}: this team API's routes do not have the "
            f"authorization type of the environment's AuthMode ({auth_mode}: {expected}); the "
            "AuthMode changed after the team stack was deployed: update the team stack"
        )
    if auth_mode == "basic" and any(_values(headers, _CALLER)):
        return 403, (
            f"{CALLER_HEADER}: named by a team API whose routes check SigV4 (AuthMode iam); "
            "the environment's AuthMode is basic: update the team stack"
        )
    origins = _values(headers, b"origin")
    if not origins:
        return None
    own = _own_origins(headers)
    if len(origins) == 1 and (origins[0].lower() in own | allowed_origins):
        return None
    seen = origins[0] if len(origins) == 1 else ",".join(origins)
    return 403, (
        f"Origin {seen!r}: not this server's own ({', '.join(sorted(own)) or 'none'}); only "
        f"its own pages are served, or an origin listed in {CORS_ALLOWED_ORIGINS}"
    )


def _values(headers: Headers, name: bytes) -> list[str]:
    return [v.decode("latin-1").strip() for n, v in headers if n.lower() == name]


def _own_origins(headers: Headers) -> frozenset[str]:
    """The origin the browser called: its team API's (which the team API states), or with
    nothing in front, the server's own Host."""
    stated = _values(headers, _DOMAIN)
    if stated:
        if len(stated) != 1:
            return frozenset()
        domain = stated[0].lower()
        # A team API is HTTPS; only `invoke local`'s stand-in, on loopback, is plain HTTP (API
        # Gateway's $context.domainName is never a loopback name).
        scheme = "http" if _is_loopback_authority(domain) else "https"
        return frozenset({f"{scheme}://{domain}"})
    hosts = _values(headers, b"host")
    if len(hosts) != 1:
        return frozenset()
    return frozenset({f"http://{hosts[0].lower()}", f"https://{hosts[0].lower()}"})


def _same_origin(headers: Headers, allowed_origins: frozenset[str]) -> bool:
    """An Origin that `refusal` let through as the server's or team API's own (not one of
    the allowed others, which MLflow's CORS answers)."""
    origins = _values(headers, b"origin")
    return bool(origins) and origins[0].lower() not in allowed_origins


async def _answer(send: Any, status: int, reason: str) -> None:
    body = f"mlflow-platform: {reason}\n".encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode())],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def _is_loopback_authority(authority: str) -> bool:
    host = authority.rsplit(":", 1)[0] if not authority.endswith("]") else authority
    return host in ("127.0.0.1", "localhost", "[::1]")
