"""A team API on loopback: what API Gateway's HTTP API does in front of the tracking server.

`invoke local` puts one in front of the server, in both auth modes, so that a client meets the
limits and answers it meets in the cloud. For each request, as the team template's HTTP API
and its integration (service_template/api.py) do:

1. The quotas that cannot be raised ("Quotas for configuring and running an HTTP API in API
   Gateway", API Gateway Developer Guide): the request line and header values together at most
   10240 bytes; a request payload and a response payload at most 10 MB (counted as 10,000,000
   bytes, the stricter reading); the integration answers within 30 s. Over a limit the client
   gets API Gateway's status: 413 for a payload, 431 for the headers, 504 for a timeout
   ("How do I troubleshoot HTTP 504 errors from API Gateway?", AWS Knowledge Center), and 500
   for a response too large, each with API Gateway's `{"message": ...}` body.
2. In `iam` mode, the SigV4 signature (service `execute-api`) is checked with botocore's own
   signer for the credentials the local platform issued, and a missing or wrong one is answered
   403 with API Gateway's messages ("Missing Authentication Token", "The request signature we
   calculated does not match...": "Troubleshooting issues with HTTP API", API Gateway Developer
   Guide).
3. The request is forwarded with the integration's parameter mappings applied: Host set to the
   load balancer's name, and in `iam` mode the caller header set to the verified caller
   (`$context.identity.userArn`), whatever the client sent in either.

Run as its own process by `invoke local up`: `python -m mlflow_platform.local.team_api CONFIG`,
where CONFIG is a JSON file of the state directory (mode 600, it holds the issued secrets).
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import re
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tracking_server import settings

# The quotas ("Quotas for configuring and running an HTTP API in API Gateway").
PAYLOAD_LIMIT = 10_000_000
HEADER_LIMIT = 10_240
TIMEOUT_SECONDS = 30.0
TOO_LARGE = (413, '{"message":"Request Entity Too Large"}')
HEADERS_TOO_LARGE = (431, '{"message":"Request Header Fields Too Large"}')
TIMED_OUT = (504, '{"message":"Endpoint request timed out"}')
RESPONSE_TOO_LARGE = (500, '{"message":"Internal Server Error"}')
UNREACHABLE = (503, '{"message":"Service Unavailable"}')
MISSING = (403, '{"message":"Missing Authentication Token"}')
MISMATCH = (
    403,
    '{"message":"The request signature we calculated does not match the signature you '
    'provided. Check your AWS Secret Access Key and signing method."}',
)
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z-]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
     "proxy-authorization", "proxy-connection", "content-length"}
)  # fmt: skip


@dataclass(frozen=True)
class Caller:
    secret_key: str
    user_arn: str
    """What API Gateway's `$context.identity.userArn` is for these credentials."""


@dataclass(frozen=True, kw_only=True)
class TeamApiConfig:
    auth_mode: str
    target_port: int
    host: str  # the load balancer's name, as the integration's Host mapping sets it
    callers: dict[str, Caller]  # iam mode: access key id -> caller
    port: int = 0
    timeout: float = TIMEOUT_SECONDS  # shorter only in the team API's own tests
    region: str = "us-east-1"  # the API's region, which a signature's scope must name

    @staticmethod
    def load(path: Path) -> TeamApiConfig:
        raw = json.loads(path.read_text())
        callers = {key: Caller(**value) for key, value in raw.pop("callers", {}).items()}
        return TeamApiConfig(callers=callers, **raw)

    def dump(self) -> dict:
        return {
            "auth_mode": self.auth_mode,
            "target_port": self.target_port,
            "host": self.host,
            "port": self.port,
            "timeout": self.timeout,
            "region": self.region,
            "callers": {k: c.__dict__ for k, c in self.callers.items()},
        }


def verify(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    callers: dict[str, Caller],
    region: str | None = None,
) -> Caller | tuple[int, str]:
    """The caller whose credentials signed this request for the API's region (when given), or
    API Gateway's refusal."""
    lower = {k.lower(): v for k, v in headers.items()}
    found = _AUTH.match(lower.get("authorization", ""))
    if found is None or "x-amz-date" not in lower:
        return MISSING
    caller = callers.get(found["key"])
    if caller is None or found["service"] != "execute-api":
        return MISMATCH
    if region is not None and found["region"] != region:
        return MISMATCH
    signed = found["signed"].split(";")
    if "host" not in signed or any(name not in lower for name in signed):
        return MISMATCH
    request = AWSRequest(
        method=method, url=url, data=body, headers={name: lower[name] for name in signed}
    )
    request.context["timestamp"] = lower["x-amz-date"]
    signer = SigV4Auth(
        Credentials(found["key"], caller.secret_key, lower.get("x-amz-security-token")),
        "execute-api",
        found["region"],
    )
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    return caller if expected == found["signature"] else MISMATCH


def header_size(request_line: str, headers: list[tuple[str, str]]) -> int:
    """What the quota counts: the request line and the header values."""
    return len(request_line.encode("latin-1")) + sum(
        len(value.encode("latin-1")) for _, value in headers
    )


class TeamApi:
    """Serves on 127.0.0.1:`config.port` (0: any free port) until `close`."""

    def __init__(self, config: TeamApiConfig) -> None:
        self.config = config
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            request_bytes = 0

            def _answer(self) -> None:
                status, headers, data = outer.answer(self)
                outer.record(self.command, self.path, status, self.request_bytes, len(data))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.timeout = config.timeout
        self._log_lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", config.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    # -- one request -------------------------------------------------------------------
    def record(self, method: str, path: str, status: int, received: int, sent: int) -> None:
        """One line per request on standard output (the component's log): what crossed, so
        a test or a benchmark can count the bytes that passed the team API. No query string,
        no header: nothing secret."""
        line = {"method": method, "path": path.split("?", 1)[0], "status": status,
                "request_bytes": received, "response_bytes": sent}  # fmt: skip
        with self._log_lock:  # one whole line at a time: requests are answered in threads
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()

    def answer(
        self, handler: http.server.BaseHTTPRequestHandler
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = list(handler.headers.items())
        body, refused = _read_body(handler)
        handler.request_bytes = len(body)  # type: ignore[attr-defined]
        if header_size(handler.requestline, headers) > HEADER_LIMIT:
            refused = HEADERS_TOO_LARGE
        if refused is not None:
            return _refusal(*refused)
        forward = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
        user_arn = None
        if self.config.auth_mode == "iam":
            url = f"http://{handler.headers.get('Host', '')}{handler.path}"
            caller = self.verify_request(handler.command, handler.path, url, dict(headers), body)
            if not isinstance(caller, Caller):
                return _refusal(*caller)
            user_arn = caller.user_arn
        mapped = self.mappings(domain=handler.headers.get("Host", ""), caller=user_arn)
        replaced = {name.lower() for name, _ in mapped}
        forward = [(k, v) for k, v in forward if k.lower() not in replaced] + mapped
        return self._forward(handler.command, handler.path, forward, body)

    def verify_request(
        self, method: str, path: str, url: str, headers: dict[str, str], body: bytes
    ) -> Caller | tuple[int, str]:
        """iam mode: the caller, or API Gateway's refusal (a test's stand-in may record it)."""
        return verify(method, url, headers, body, self.config.callers, self.config.region)

    def mappings(self, *, domain: str, caller: str | None) -> list[tuple[str, str]]:
        """The integration's `overwrite:header` parameter mappings, with this request's values
        (service_template/api.py declares the same names)."""
        mapped = [
            ("Host", self.config.host),
            (
                settings.ROUTE_AUTHORIZATION_HEADER,
                settings.ROUTE_AUTHORIZATION_BY_MODE[self.config.auth_mode],
            ),
            (settings.DOMAIN_HEADER, domain),
        ]
        # In basic mode the caller mapping is there too, and `$context.identity.userArn` is
        # empty: API Gateway then sends no such header.
        if caller:
            mapped.append((settings.CALLER_HEADER, caller))
        else:
            mapped.append((settings.CALLER_HEADER, ""))
        return mapped

    def _forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.config.target_port, timeout=self.timeout
        )
        # The quota is for the whole answer, not each read: past it the connection is closed.
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            if connection.sock is not None:
                with contextlib.suppress(OSError):
                    connection.sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(self.timeout, expire)
        timer.start()
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if value:
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            data = response.read(PAYLOAD_LIMIT + 1)
            if expired.is_set():
                return _refusal(*TIMED_OUT)
            if len(data) > PAYLOAD_LIMIT:
                return _refusal(*RESPONSE_TOO_LARGE)
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            return response.status, kept, data
        except (OSError, http.client.HTTPException):
            return _refusal(*(TIMED_OUT if expired.is_set() else UNREACHABLE))
        finally:
            timer.cancel()
            connection.close()

    # -- lifecycle ---------------------------------------------------------------------
    def serve_in_background(self) -> TeamApi:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _refusal(status: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("Content-Type", "application/json")], message.encode()


BAD_REQUEST = (400, '{"message":"Bad Request"}')
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _read_body(handler: http.server.BaseHTTPRequestHandler) -> tuple[bytes, tuple | None]:
    """The whole body, or (what was read, 413) once it passes the payload quota: the rest is
    read and dropped, so that the client, still sending, gets the answer. Framing API Gateway
    would not accept (two Content-Length values that differ, a chunk size that is not hex) is
    answered 400, and the connection closed."""
    chunked = "chunked" in handler.headers.get("Transfer-Encoding", "").lower()
    lengths = {v.strip() for v in handler.headers.get_all("Content-Length") or []}
    if len(lengths) > 1 and not chunked:
        handler.close_connection = True
        return b"", BAD_REQUEST
    if chunked:
        parts: list[bytes] = []
        size, over = 0, False
        while True:
            line = handler.rfile.readline(65537)
            digits = line.split(b";", 1)[0].strip()
            if not digits or not set(digits) <= _HEX:
                handler.close_connection = True
                return b"", BAD_REQUEST
            length = int(digits, 16)
            if length == 0:
                while handler.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            chunk = handler.rfile.read(length)
            handler.rfile.readline(3)
            size += length
            over = over or size > PAYLOAD_LIMIT
            if not over:
                parts.append(chunk)
        return (b"", TOO_LARGE) if over else (b"".join(parts), None)
    declared = (handler.headers.get("Content-Length") or "0").strip()
    if not declared.isdigit():
        handler.close_connection = True
        return b"", BAD_REQUEST
    length = int(declared)
    if length > PAYLOAD_LIMIT:
        left = length
        while left > 0:
            read = handler.rfile.read(min(left, 1 << 20))
            if not read:
                break
            left -= len(read)
        return b"", TOO_LARGE
    return handler.rfile.read(length) if length else b"", None


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m mlflow_platform.local.team_api CONFIG.json")
    config = TeamApiConfig.load(Path(args[0]))
    served = TeamApi(config)
    print(f"team API ({config.auth_mode}) on {served.url} -> 127.0.0.1:{config.target_port}",
          flush=True)  # fmt: skip
    try:
        served.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        served.server.server_close()


if __name__ == "__main__":
    main()
