"""The requests auth that signs one MLflow request for API Gateway (SigV4, `execute-api`).

What is signed is the prepared request as it will be sent: its final URL, its headers and its
body (AWS General Reference, "Signature Version 4 signing process"; API Gateway Developer
Guide, "Control access to an HTTP API with IAM authorization"). So the query string is first
rewritten into SigV4's canonical encoding (spaces as %20, not +), which a server decodes to the
same values, and API Gateway, re-encoding what it receives, computes the same string.

The signature goes to the tracking URI's host only. MLflow builds a new auth for every request
to its tracking (or registry) URI, and this one signs that request's origin alone, refuses plain
HTTP except to loopback, and takes its signature off any redirect, which requests would
otherwise follow with X-Amz-Security-Token (it drops only Authorization, and only on a host
change). MLflow 3.18's presigned S3 transfers use plain requests, without this auth.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from requests import PreparedRequest, Response
from requests.auth import AuthBase

from mlflow_platform_client.body import signable

SERVICE = "execute-api"
SIGNATURE_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-SHA256")
# Not signed: hop-by-hop headers (RFC 9110, 7.6.1), which a proxy may change, what botocore never
# signs, and the Authorization the signature replaces (MLflow's basic auth, if also set).
_UNSIGNED = frozenset(
    {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer",
     "transfer-encoding", "upgrade", "expect", "user-agent", "x-amzn-trace-id",
     *(name.lower() for name in SIGNATURE_HEADERS)}
)  # fmt: skip
_UNRESERVED = "-_.~"


class SigningError(ValueError):
    """A request this auth will not sign (another host, plain HTTP to a remote host)."""


Origin = tuple[str, str, int]


class SigV4ExecuteApiAuth(AuthBase):
    """Signs the requests of one MLflow call; `credentials` and `region` are asked each time."""

    def __init__(
        self,
        *,
        credentials: Callable[[], ReadOnlyCredentials],
        region: Callable[[str], str],
        allowed: Callable[[], set[Origin]] | None = None,
    ) -> None:
        self._credentials = credentials
        self._region = region
        self._allowed = allowed
        self._origin: Origin | None = None

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        url = canonical_query(str(request.url))
        origin = origin_of(url)
        # MLflow hands its auth to any http(s) URI it builds credentials for (an artifact URI
        # a run or a model version names, too): only the tracking and registry URIs get it.
        allowed = self._allowed() if self._allowed is not None else set()
        if allowed and origin not in allowed:
            raise SigningError(
                f"refusing to sign a request to {_shown(origin)}: this signature is for "
                f"{', '.join(sorted(map(_shown, allowed)))} (MLflow's tracking and registry "
                "URIs) only"
            )
        if self._origin is None:
            self._origin = origin
        elif origin != self._origin:
            raise SigningError(
                f"refusing to sign a request to {_shown(origin)}: this signature is for "
                f"{_shown(self._origin)} (the tracking URI's host) only"
            )
        body = signable(request.body)
        if body is not request.body:
            request.body = body
            request.headers.pop("Transfer-Encoding", None)
            request.headers["Content-Length"] = str(len(body))  # type: ignore[arg-type]
        request.url = url
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _UNSIGNED}
        signed = AWSRequest(method=request.method, url=url, headers=headers, data=body)
        SigV4Auth(self._credentials(), SERVICE, self._region(url)).add_auth(signed)
        for name in SIGNATURE_HEADERS:
            request.headers.pop(name, None)
            if name in signed.headers:
                request.headers[name] = signed.headers[name]
        request.register_hook("response", unsigned_redirect)
        return request


def unsigned_redirect(response: Response, **_: Any) -> Response:
    """A redirect is followed, if at all, without this request's signature: requests copies the
    request it answers, headers and all, to the new location."""
    if response.is_redirect:
        for name in SIGNATURE_HEADERS:
            response.request.headers.pop(name, None)
    return response


def canonical_query(url: str) -> str:
    """`url` with its query in SigV4's canonical encoding: each name and value decoded (`+` as a
    space, as requests encodes them and servers decode them), then percent-encoded except the
    unreserved characters. Order and repeated names are kept; API Gateway sorts when it checks."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True, errors="surrogateescape")
    query = "&".join(f"{_encoded(name)}={_encoded(value)}" for name, value in pairs)
    return urlunsplit(parts._replace(query=query))


def _encoded(text: str) -> str:
    return quote(text, safe=_UNRESERVED, errors="surrogateescape")


def origin_of(url: str) -> Origin:
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme, 0)
    if scheme == "https" or (scheme == "http" and _is_loopback(host)):
        return scheme, host, port
    raise SigningError(
        f"refusing to sign a request to {scheme}://{host}: the signature, the session token and "
        "the body would cross the network in clear; use the team API's https:// URL"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _shown(origin: Origin) -> str:
    scheme, host, port = origin
    return f"{scheme}://{host}:{port}"
