"""`invoke ui`: a team's MLflow, signed with the caller's own AWS credentials, on localhost.

In `iam` mode every request to a team API needs a SigV4 signature, which a browser cannot
make. This proxy listens on a loopback address only, and forwards each request to the team
API signed for `execute-api` in the API's region with the credentials of the standard SDK
chain (profile, environment, SSO, a role), read afresh for every request so that refreshed
credentials are used as soon as the SDK has them. Each person then sees what their own
identity may see. It also serves MLflow's client (`MLFLOW_TRACKING_URI=http://127.0.0.1:PORT`),
which then needs no signing of its own; MLflow's built-in signing cannot send a file body.

Listening on loopback is not enough: a web page whose DNS name is rebound to 127.0.0.1 is, to
the browser, the same origin as its own site, and its GETs carry no Origin header. The proxy
replaces Host before signing, so the team server's own Host check never sees the page's name.
So the proxy answers only requests addressed to its own loopback names (else 421, Misdirected
Request, RFC 9110 15.5.20) and refuses any request a page of another origin sends (403).

Artifact bytes do not pass the proxy. The server (MLflow 3.18, presigned-only) answers the UI
with presigned S3 URLs, which the browser uses itself: a download navigates to the URL, and
previews and uploads are fetch() calls that S3 answers for the proxy's pages because the
bucket's CORS rule admits its loopback origins (`page_origins`; environment_template/
artifacts.py, `invoke_ui_origins`, says why that and not a proxy that fetches S3 URLs itself).
"""

from __future__ import annotations

import http.client
import http.server
import ipaddress
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from mlflow_platform.errors import PlatformError

SERVICE = "execute-api"
_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
# Hop-by-hop headers (RFC 9110, 7.6.1) and what the proxy sets itself. Origin too: `refusal`
# admitted only the proxy's own pages, and the team server serves no origin but its team API's.
_NOT_FORWARDED = frozenset(
    {"connection", "keep-alive", "proxy-authorization", "te", "trailer", "transfer-encoding",
     "upgrade", "host", "authorization", "x-amz-date", "x-amz-security-token",
     "x-amz-content-sha256", "content-length", "accept-encoding", "origin"}
)  # fmt: skip


class ProxyError(PlatformError):
    pass


@dataclass(frozen=True, kw_only=True)
class Target:
    scheme: str
    host: str
    port: int
    base_path: str
    region: str


def target(url: str, *, region: str | None = None) -> Target:
    """The team API to forward to; its region from its host name unless given."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    found = _API_HOST.match(host)
    loopback = _is_loopback(host)
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ProxyError(f"--url {url!r}: must be the team API's https:// URL (TrackingUri)")
    if region is None:
        if found is None:
            raise ProxyError(f"--url {url!r}: not an execute-api host name, so --region is needed")
        region = found.group(1)
    return Target(
        scheme=parts.scheme,
        host=host,
        port=parts.port or (443 if parts.scheme == "https" else 80),
        base_path=parts.path.rstrip("/"),
        region=region,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def frozen_credentials(session) -> Callable[[], ReadOnlyCredentials]:
    """The SDK chain's credentials, read for each request; a clear error when there are none."""
    if session.get_credentials() is None:
        raise ProxyError(
            "no AWS credentials found: set AWS_PROFILE (or --profile), run `aws sso login`, "
            "or run where a role provides them (SageMaker Studio, a notebook instance)"
        )

    def current() -> ReadOnlyCredentials:
        credentials = session.get_credentials()
        if credentials is None:
            raise ProxyError("the AWS credentials are no longer available")
        return credentials.get_frozen_credentials()

    return current


def sign(
    *, method: str, url: str, headers: dict[str, str], body: bytes,
    credentials: ReadOnlyCredentials, region: str,
) -> dict[str, str]:  # fmt: skip
    """The headers to send: the given ones with a SigV4 signature for execute-api."""
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(credentials, SERVICE, region).add_auth(request)
    return dict(request.headers.items())


Answer = tuple[int, dict[str, str], bytes]
"""Status, headers and body of a response."""
_RESPONSE_HOP_BY_HOP = ("transfer-encoding", "connection", "content-length", "keep-alive")


def send(
    *, scheme: str, host: str, port: int, method: str, path: str,
    headers: dict[str, str], body: bytes,
) -> Answer:  # fmt: skip
    """One request, its whole answer read, less the hop-by-hop headers."""
    connection_class = (
        http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(host, port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        data = answer.read()
        kept = {k: v for k, v in answer.getheaders() if k.lower() not in _RESPONSE_HOP_BY_HOP}
        return answer.status, kept, data
    finally:
        connection.close()


def local_names(bind: str, port: int) -> frozenset[str]:
    """The `host:port` names a browser on this machine reaches a server on `bind:port` by."""
    hosts = {"127.0.0.1", "localhost", "[::1]", f"[{bind}]" if ":" in bind else bind}
    names = {f"{host}:{port}" for host in hosts}
    return frozenset(names | hosts if port == 80 else names)  # port 80 may be left out


def page_origins(names: frozenset[str]) -> frozenset[str]:
    """The origins of the pages the proxy serves under `names` (`local_names`): the only
    origins it admits, and the ones the artifact bucket's CORS rule must admit."""
    return frozenset(f"http://{name}" for name in names)


def refusal(headers: Message, names: frozenset[str]) -> Answer | None:
    """Why a request is not answered, unless its Host is one of `names` and its Origin (if
    any) is `http://` one of them: otherwise a rebound DNS name or another site's page sent it."""
    hosts = [value.strip().lower() for value in headers.get_all("Host") or []]
    if len(hosts) != 1 or hosts[0] not in names:
        shown = hosts[0] if len(hosts) == 1 else hosts
        return _refused(
            421,
            f"Host {shown!r} is not this proxy's address; it answers only "
            f"{', '.join(sorted(names))} (a site whose DNS name points here is refused)",
        )
    for origin in headers.get_all("Origin") or []:
        if origin.strip().lower() not in page_origins(names):
            return _refused(
                403,
                f"Origin {origin!r} is not this proxy's own; only its own pages "
                f"(http://{hosts[0]}) may send requests through it",
            )
    return None


def _refused(status: int, reason: str) -> Answer:
    return status, {"Content-Type": "text/plain"}, f"mlflow-platform: {reason}\n".encode()


class LoopbackServer:
    """HTTP on a loopback address, each request (body read whole) answered by `answer`.

    With `local_only`, a request not addressed to the server's own loopback names, or sent by
    another origin's page, is refused before `answer` sees it (see `refusal`)."""

    def __init__(
        self,
        answer: Callable[[str, str, dict[str, str], bytes], Answer],
        *,
        bind: str = "127.0.0.1",
        port: int = 0,
        log: Callable[[str], None] = lambda _: None,
        local_only: bool = False,
    ) -> None:
        if not _is_loopback(bind):
            raise ProxyError(f"{bind!r} is not a loopback address")
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                refused = refusal(self.headers, outer.names) if local_only else None
                if refused is not None:
                    self._reply(*refused)
                    return
                try:
                    status, headers, data = answer(
                        self.command, self.path, dict(self.headers), body
                    )
                except (OSError, ProxyError) as error:
                    status, headers, data = _refused(502, str(error))
                self._reply(status, headers, data)

            def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                log(f"{self.command} {self.path} -> {status}")

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        server_class = (
            http.server.ThreadingHTTPServer
            if ":" not in bind
            else type("V6", (http.server.ThreadingHTTPServer,), {"address_family": 10})
        )
        self._serving = False
        self.server = server_class((bind, port), Handler)
        self.port = self.server.server_address[1]
        self.names = local_names(bind, self.port)
        host = f"[{bind}]" if ":" in bind else bind
        self.url = f"http://{host}:{self.port}"

    def serve_in_background(self) -> None:
        self._serving = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve_forever(self) -> None:
        self._serving = True
        self.server.serve_forever()

    def close(self) -> None:
        if self._serving:  # shutdown() waits for a serve_forever loop, which may never have run
            self.server.shutdown()
        self.server.server_close()


class SigningProxy(LoopbackServer):
    """Listens on `bind:port` (loopback only), forwarding signed requests to `to`."""

    def __init__(
        self,
        *,
        to: Target,
        credentials: Callable[[], ReadOnlyCredentials],
        bind: str = "127.0.0.1",
        port: int = 0,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        if not _is_loopback(bind):
            raise ProxyError(
                f"--bind {bind!r}: the proxy signs with your credentials, so it listens on a "
                "loopback address only (127.0.0.1 or ::1)"
            )
        self.to = to
        self.credentials = credentials
        super().__init__(self.forward, bind=bind, port=port, log=log, local_only=True)

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        to = self.to
        default = to.port == {"https": 443, "http": 80}[to.scheme]
        authority = to.host if default else f"{to.host}:{to.port}"
        url = f"{to.scheme}://{authority}{to.base_path}{path}"
        kept = {k: v for k, v in headers.items() if k.lower() not in _NOT_FORWARDED}
        kept["Host"] = authority
        signed = sign(method=method, url=url, headers=kept, body=body,
                      credentials=self.credentials(), region=to.region)  # fmt: skip
        return send(scheme=to.scheme, host=to.host, port=to.port, method=method,
                    path=to.base_path + path, headers=signed, body=body)  # fmt: skip
