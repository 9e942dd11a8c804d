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

import re
import urllib.parse
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from mlflow_platform.signing_proxy import Answer, LoopbackServer, send
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


class Gateway(LoopbackServer):
    """Serves on 127.0.0.1, forwarding verified requests to the tracking server's port."""

    def __init__(self, *, target_port: int, host: str, callers: dict[str, Caller]) -> None:
        self.target_port, self.host, self.callers = target_port, host, callers
        self.forwarded: list[str] = []
        super().__init__(self.answer)
        self.serve_in_background()

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        url = f"http://{headers.get('Host')}{path}"
        caller = verify(method, url, headers, body, self.callers)
        if isinstance(caller, str):
            return 403, {"Content-Type": "application/json"}, caller.encode()
        self.forwarded.append(caller.user_arn)
        replaced = ("host", settings.CALLER_HEADER.lower())
        forward = {k: v for k, v in headers.items() if k.lower() not in replaced}
        forward["Host"] = self.host
        forward[settings.CALLER_HEADER] = caller.user_arn
        return send(scheme="http", host="127.0.0.1", port=self.target_port, method=method,
                    path=path, headers=forward, body=body)  # fmt: skip


def port_of(url: str) -> int:
    port = urllib.parse.urlsplit(url).port
    assert port is not None
    return port
