"""A team API of an `iam` environment, on loopback: what API Gateway does before the server.

For each request, as an HTTP API route with AWS_IAM authorization and the team template's
integration do it:
1. the SigV4 signature (service `execute-api`) is checked with botocore's own signer, for
   credentials it knows; a missing or wrong one is answered 403 with API Gateway's messages
   ("Missing Authentication Token", "The request signature we calculated does not match the
   signature you provided...": API Gateway Developer Guide, "Troubleshooting HTTP API").
2. the request is forwarded with Host and the caller header overwritten as the integration's
   parameter mappings say (service_template/api.py): the load balancer's name, and
   `$context.identity.userArn`, the verified caller.
Used by the tests that run the examples in iam mode; it verifies, it never signs.
"""

from __future__ import annotations

import http.client
import http.server
import re
import threading
import urllib.parse
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tracking_server import settings

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z-]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
MISSING = '{"message":"Missing Authentication Token"}'
MISMATCH = (
    '{"message":"The request signature we calculated does not match the signature you '
    'provided. Check your AWS Secret Access Key and signing method."}'
)


@dataclass(frozen=True)
class Caller:
    secret_key: str
    user_arn: str
    """What API Gateway's `$context.identity.userArn` is for these credentials."""


def verify(
    method: str, url: str, headers: dict[str, str], body: bytes, callers: dict[str, Caller]
) -> Caller | str:
    """The caller whose credentials signed this request, or API Gateway's refusal."""
    lower = {k.lower(): v for k, v in headers.items()}
    found = _AUTH.match(lower.get("authorization", ""))
    if found is None or "x-amz-date" not in lower:
        return MISSING
    caller = callers.get(found["key"])
    if caller is None or found["service"] != "execute-api":
        return MISMATCH
    signed = found["signed"].split(";")
    if "host" not in signed or any(name not in lower for name in signed):
        return MISMATCH
    request = AWSRequest(
        method=method, url=url, data=body, headers={name: lower[name] for name in signed}
    )
    request.context["timestamp"] = lower["x-amz-date"]
    token = lower.get("x-amz-security-token")
    signer = SigV4Auth(
        Credentials(found["key"], caller.secret_key, token), "execute-api", found["region"]
    )
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    return caller if expected == found["signature"] else MISMATCH


class Gateway:
    """Serves on 127.0.0.1, forwarding verified requests to the tracking server's port."""

    def __init__(self, *, target_port: int, host: str, callers: dict[str, Caller]) -> None:
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = f"http://{self.headers.get('Host')}{self.path}"
                caller = verify(self.command, url, dict(self.headers), body, callers)
                if isinstance(caller, str):
                    self._send(403, {"Content-Type": "application/json"}, caller.encode())
                    return
                gateway.forwarded.append(caller.user_arn)
                replaced = ("host", settings.CALLER_HEADER.lower())
                forward = {k: v for k, v in self.headers.items() if k.lower() not in replaced}
                forward["Host"] = host
                forward[settings.CALLER_HEADER] = caller.user_arn
                connection = http.client.HTTPConnection("127.0.0.1", target_port, timeout=60)
                try:
                    connection.request(self.command, self.path, body=body, headers=forward)
                    answer = connection.getresponse()
                    data = answer.read()
                    headers = {k: v for k, v in answer.getheaders()
                               if k.lower() not in ("transfer-encoding", "connection",
                                                    "content-length")}  # fmt: skip
                    self._send(answer.status, headers, data)
                finally:
                    connection.close()

            def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, *args: object) -> None:
                pass

        self.forwarded: list[str] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def port_of(url: str) -> int:
    port = urllib.parse.urlsplit(url).port
    assert port is not None
    return port
