"""The local platform's S3 endpoint: moto's server, in this process, behind a signature check,
with its objects kept on disk.

moto's server stores S3 in memory and answers anyone: every OS user on the machine could list,
read and overwrite artifacts (models are cloudpickled, so a replaced one runs code in whoever
loads it) and reset everything through `/moto-api/`; and `invoke local down` lost every
artifact while the database kept the runs that point at them. moto has neither a signature
check that takes credentials of our choosing (its IAM-based access control counts actions and
knows only keys its own IAM made) nor persistence across restarts, and no S3 server from
Debian or PyPI that stores on disk is both maintained and complete enough for MLflow's
presigned-only transfers and the other services the tests take from the same endpoint (SSM,
Secrets Manager). So moto's WSGI application runs here, in the process that owns the port,
wrapped by two pieces of our own (no moto port on loopback that another user could reach
around them):

- **Every request is signed, or refused** (`verify`): SigV4 in the Authorization header
  (checked with botocore's signer, the payload hash too when the client sent one) or in the
  query string (a presigned URL: the server's, with its expiry), with the credentials `invoke
  local up` generated (credentials.json, mode 600). A missing, wrong or expired signature is
  answered 403 with S3's error codes before moto sees the request. Two exceptions: OPTIONS,
  a browser's CORS preflight, which carries no credentials and changes nothing (moto answers
  CORS for every origin, which the local UI's presigned downloads need); and `/moto-api/`, moto's
  management API (reset, state, recordings), refused to everyone.
- **Objects are kept under the state directory** (`ObjectStore`): after an S3 request that
  may have changed objects succeeds, and before its answer is sent, every object moto holds
  that is new since the last look is copied to `s3/blobs/` and recorded in `s3/index.sqlite3`
  (bucket, key, ETag, Last-Modified, metadata); deleted ones are removed. At start the index
  is loaded back into moto. What is not kept: multipart uploads in progress, bucket
  configurations (CORS, policies, versions) and the other services' state.

Run as its own process by `invoke local up`: `python -m mlflow_platform.local.s3_endpoint
CONFIG`, where CONFIG is a JSON file of the state directory (mode 600: it holds the secret).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import normalize_url_path

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = datetime.timedelta(minutes=15)  # S3's RequestTimeTooSkewed
MAX_EXPIRES = 7 * 24 * 3600  # a presigned URL's longest life on S3
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
_SCOPE = re.compile(
    r"^(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9-]+)/aws4_request$"
)
_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_DRAIN_LIMIT = 1 << 20  # a refused body up to this is read, so the client gets the answer
RAW_HEADERS = "mlflow_platform.raw_headers"  # the environ key for the headers as sent


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str


MISSING = Refusal(403, "AccessDenied", "Access Denied")
UNKNOWN_KEY = Refusal(
    403, "InvalidAccessKeyId",
    "The AWS Access Key Id you provided does not exist in our records.",
)  # fmt: skip
MISMATCH = Refusal(
    403, "SignatureDoesNotMatch",
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method.",
)  # fmt: skip
SKEWED = Refusal(
    403, "RequestTimeTooSkewed",
    "The difference between the request time and the current time is too large.",
)  # fmt: skip
EXPIRED = Refusal(403, "AccessDenied", "Request has expired")
BAD_DIGEST = Refusal(
    400, "XAmzContentSHA256Mismatch",
    "The provided 'x-amz-content-sha256' header does not match what was computed.",
)  # fmt: skip
MANAGEMENT = Refusal(403, "AccessDenied", "moto's management API is not served here")


@dataclass(frozen=True)
class Verified:
    access_key: str
    service: str


@dataclass(frozen=True, kw_only=True)
class S3EndpointConfig:
    port: int
    data_dir: str  # where objects are kept (the state directory's s3/)
    credentials: dict[str, str]  # access key id -> secret access key
    buckets: list[str]  # created at start when missing
    region: str = "us-east-1"

    @staticmethod
    def load(path: Path) -> S3EndpointConfig:
        return S3EndpointConfig(**json.loads(path.read_text()))

    def dump(self) -> dict:
        return dict(self.__dict__)


# -- signatures ----------------------------------------------------------------------------
def verify(
    method: str,
    raw_uri: str,
    headers: list[tuple[str, str]],
    credentials: dict[str, str],
    *,
    body: Callable[[], bytes] | None = None,
    now: datetime.datetime | None = None,
) -> Verified | Refusal:
    """Who signed this request, by SigV4 in its Authorization header or its query string
    (a presigned URL), or why it is refused. `raw_uri` is the path and query as sent; `body`
    reads the payload, called only when the client states a SHA-256 of it to check."""
    now = now or datetime.datetime.now(datetime.UTC)
    path, _, query = raw_uri.partition("?")
    params = [_split(pair) for pair in query.split("&") if pair]
    names = {name for name, _ in params}
    lower: dict[str, list[str]] = {}
    for name, value in headers:
        lower.setdefault(name.lower().strip(), []).append(value)
    authorization = lower.get("authorization", [""])[0]
    presigned = "X-Amz-Signature" in names or "X-Amz-Credential" in names
    if presigned and authorization:
        return MISSING  # S3: only one auth mechanism allowed
    if presigned:
        query_values = dict(params)
        if query_values.get("X-Amz-Algorithm") != ALGORITHM:
            return MISSING
        credential = query_values.get("X-Amz-Credential", "")
        signed = query_values.get("X-Amz-SignedHeaders", "")
        signature = query_values.get("X-Amz-Signature", "")
        stamp = query_values.get("X-Amz-Date", "")
        expires = query_values.get("X-Amz-Expires", "")
        if not expires.isdigit() or not 1 <= int(expires) <= MAX_EXPIRES:
            return MISSING
        params = [(k, v) for k, v in params if k != "X-Amz-Signature"]
    else:
        found = _AUTH.match(authorization.strip())
        if found is None:
            return MISSING
        credential, signed, signature = found["credential"], found["signed"], found["signature"]
        stamp = lower.get("x-amz-date", [""])[0].strip()
        expires = ""
    scope = _SCOPE.match(credential)
    if scope is None or not re.fullmatch(r"\d{8}T\d{6}Z", stamp) or stamp[:8] != scope["date"]:
        return MISSING
    secret = credentials.get(scope["key"])
    if secret is None:
        return UNKNOWN_KEY
    signed_names = signed.split(";")
    if "host" not in signed_names or any(name not in lower for name in signed_names):
        return MISMATCH
    when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    if presigned:
        if now > when + datetime.timedelta(seconds=int(expires)) or when - now > MAX_SKEW:
            return EXPIRED
        payload = "UNSIGNED-PAYLOAD"
    else:
        if abs(now - when) > MAX_SKEW:
            return SKEWED
        payload = lower.get("x-amz-content-sha256", [""])[0].strip()
        if not payload:
            payload = hashlib.sha256(body() if body else b"").hexdigest()
    service = scope["service"]
    canonical = "\n".join([
        method.upper(),
        path if service == "s3" else quote(normalize_url_path(path), safe="/~"),
        "&".join(f"{k}={v}" for k, v in sorted(
            (quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in params
        )),
        "".join(f"{name}:{','.join(' '.join(v.split()) for v in lower[name])}\n"
                for name in sorted(signed_names)),
        ";".join(sorted(signed_names)),
        payload,
    ])  # fmt: skip
    signer = SigV4Auth(Credentials(scope["key"], secret), service, scope["region"])
    request = AWSRequest(method=method)
    request.context["timestamp"] = stamp
    string_to_sign = "\n".join([
        ALGORITHM, stamp, "/".join(credential.split("/")[1:]),
        hashlib.sha256(canonical.encode()).hexdigest(),
    ])  # fmt: skip
    expected = signer.signature(string_to_sign, request)
    if not secrets.compare_digest(expected, signature):
        return MISMATCH
    if (
        _HEX_DIGEST.match(payload)
        and body is not None
        and hashlib.sha256(body()).hexdigest() != payload
    ):
        return BAD_DIGEST
    return Verified(access_key=scope["key"], service=service)


def _split(pair: str) -> tuple[str, str]:
    name, _, value = pair.partition("=")
    return unquote(name), unquote(value)


# -- objects on disk -----------------------------------------------------------------------
class ObjectStore:
    """moto's S3 objects, mirrored under `root` (mode 700): a file per object in blobs/ and an
    index in SQLite, written after each change and loaded back at start."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o700)
        self.blobs = root / "blobs"
        self.blobs.mkdir(exist_ok=True)
        self.blobs.chmod(0o700)
        self.db = sqlite3.connect(root / "index.sqlite3", check_same_thread=False,
                                  isolation_level=None)  # fmt: skip
        (root / "index.sqlite3").chmod(0o600)
        self.db.executescript(
            """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS buckets (name TEXT PRIMARY KEY, region TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS objects (
                bucket TEXT NOT NULL, key TEXT NOT NULL, blob TEXT NOT NULL,
                etag TEXT NOT NULL, last_modified TEXT NOT NULL, metadata TEXT NOT NULL,
                PRIMARY KEY (bucket, key));
            """
        )
        self.lock = threading.Lock()
        self.known: dict[tuple[str, str], tuple[Any, str]] = {}  # -> (moto's key, blob)
        self.known_buckets: set[str] = set()

    def restore(self, backend: Any) -> int:
        """Load what the index holds into moto; returns the number of objects."""
        with self.lock:
            for name, region in self.db.execute("SELECT name, region FROM buckets"):
                if name not in backend.buckets:
                    backend.create_bucket(name, region)
                self.known_buckets.add(name)
            rows = self.db.execute(
                "SELECT bucket, key, blob, etag, last_modified, metadata FROM objects"
            ).fetchall()
            for bucket, name, blob, etag, last_modified, metadata in rows:
                path = self.blobs / blob
                if bucket not in backend.buckets or not path.exists():
                    print(f"dropping {bucket}/{name} from the index: its data is gone",
                          flush=True)  # fmt: skip
                    self.db.execute("DELETE FROM objects WHERE bucket = ? AND key = ?",
                                    (bucket, name))  # fmt: skip
                    continue
                key = backend.put_object(
                    bucket, name, path.read_bytes(), etag=etag.strip('"'),
                    disable_notification=True,
                )  # fmt: skip
                for old in list(key.metadata):
                    del key.metadata[old]
                key.metadata.update(json.loads(metadata))
                key.last_modified = datetime.datetime.fromisoformat(last_modified)
                self.known[(bucket, name)] = (key, blob)
            referenced = {blob for _, blob in self.known.values()}
            for path in self.blobs.iterdir():
                if path.name not in referenced:  # left by a copy a crash interrupted
                    path.unlink(missing_ok=True)
            return len(self.known)

    def sync(self, backend: Any) -> None:
        """Record what changed in moto since the last look: new or replaced objects are
        copied, deleted ones removed."""
        with self.lock:
            seen: set[tuple[str, str]] = set()
            for bucket_name, bucket in list(backend.buckets.items()):
                if bucket_name not in self.known_buckets:
                    self.db.execute("INSERT OR REPLACE INTO buckets VALUES (?, ?)",
                                    (bucket_name, bucket.region_name))  # fmt: skip
                    self.known_buckets.add(bucket_name)
                for name, key in bucket.keys.items():
                    if not hasattr(key, "_value_buffer"):  # a delete marker
                        continue
                    seen.add((bucket_name, name))
                    known = self.known.get((bucket_name, name))
                    if known is None or known[0] is not key:
                        self._keep(bucket_name, name, key, known)
            for gone in set(self.known) - seen:
                self.db.execute("DELETE FROM objects WHERE bucket = ? AND key = ?", gone)
                (self.blobs / self.known.pop(gone)[1]).unlink(missing_ok=True)
            for bucket_name in self.known_buckets - set(backend.buckets):
                self.db.execute("DELETE FROM buckets WHERE name = ?", (bucket_name,))
                self.known_buckets.discard(bucket_name)

    def _keep(self, bucket: str, name: str, key: Any, known: tuple[Any, str] | None) -> None:
        blob = secrets.token_hex(16)
        fd = os.open(self.blobs / blob, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out, key.lock:
                key._value_buffer.seek(0)
                shutil.copyfileobj(key._value_buffer, out, 1 << 20)
        except ValueError:  # deleted while we looked (its buffer closed): the next look drops it
            (self.blobs / blob).unlink(missing_ok=True)
            return
        self.db.execute(
            "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?)",
            (bucket, name, blob, key.etag, key.last_modified.isoformat(),
             json.dumps(dict(key.metadata))),
        )  # fmt: skip
        if known is not None:
            (self.blobs / known[1]).unlink(missing_ok=True)
        self.known[(bucket, name)] = (key, blob)


# -- the application -----------------------------------------------------------------------
def _changes_objects(method: str, query: str) -> bool:
    """An S3 request that may have added, replaced or removed an object (not a part)."""
    if method not in ("PUT", "POST", "DELETE"):
        return False
    names = {_split(pair)[0] for pair in query.split("&") if pair}
    if "partNumber" in names and "uploadId" in names:  # UploadPart, UploadPartCopy
        return False
    return "uploads" not in names  # CreateMultipartUpload


class AuthenticatingFront:
    """WSGI: refuse what is not signed with our credentials, pass the rest to moto, and keep
    the objects a successful request changed."""

    def __init__(self, app: Any, credentials: dict[str, str], store: ObjectStore,
                 backend: Any) -> None:  # fmt: skip
        self.app = app
        self.credentials = credentials
        self.store = store
        self.backend = backend

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        raw_uri = environ.get("REQUEST_URI") or environ.get("RAW_URI") or "/"
        path = environ.get("PATH_INFO", "")
        if path.startswith("/moto-api") or path == "/favicon.ico":
            return self._refuse(environ, start_response, MANAGEMENT)
        if method == "OPTIONS":  # a CORS preflight: no credentials, no change
            return self.app(environ, start_response)
        headers = environ.get(RAW_HEADERS) or _headers_from(environ)
        body: list[bytes] = []

        def read_body() -> bytes:
            if not body:
                from werkzeug.wsgi import get_input_stream

                body.append(get_input_stream(environ).read())
                environ["wsgi.input"] = io.BytesIO(body[0])
                environ["CONTENT_LENGTH"] = str(len(body[0]))
                environ.pop("HTTP_TRANSFER_ENCODING", None)
                environ["wsgi.input_terminated"] = False
            return body[0]

        verified = verify(method, raw_uri, headers, self.credentials, body=read_body)
        if isinstance(verified, Refusal):
            return self._refuse(environ, start_response, verified)
        status: list[int] = []

        def recording(code: str, response_headers: list, exc_info: Any = None) -> Any:
            status.append(int(code.split(" ", 1)[0]))
            return start_response(code, response_headers, exc_info)

        answer = self.app(environ, recording)
        if (
            verified.service == "s3"
            and status
            and status[0] < 300
            and _changes_objects(method, raw_uri.partition("?")[2])
        ):
            answer = list(answer)  # moto's answer is complete: keep the change, then send it
            self.store.sync(self.backend)
        return answer

    def _refuse(self, environ: dict, start_response: Callable, refusal: Refusal) -> list[bytes]:
        length = environ.get("CONTENT_LENGTH") or ""
        drained = length.isdigit() and int(length) <= _DRAIN_LIMIT
        if drained:
            with contextlib.suppress(OSError):
                environ["wsgi.input"].read(int(length))
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{refusal.code}</Code><Message>{refusal.message}</Message>"
            f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>"
        ).encode()
        headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
        if not drained:
            headers.append(("Connection", "close"))
        start_response(f"{refusal.status} Refused", headers)
        print(json.dumps({"refused": refusal.code, "method": environ["REQUEST_METHOD"],
                          "path": environ.get("PATH_INFO", "")}), flush=True)  # fmt: skip
        return [body]


def _headers_from(environ: dict) -> list[tuple[str, str]]:
    found = [(k[5:].replace("_", "-").lower(), v) for k, v in environ.items()
             if k.startswith("HTTP_")]  # fmt: skip
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            found.append((name.replace("_", "-").lower(), environ[name]))
    return found


def serve(config: S3EndpointConfig) -> Any:
    """moto's application behind the front, on 127.0.0.1:`config.port`; returns the server
    (werkzeug's, threaded), not yet serving."""
    os.environ["MOTO_ACCOUNT_ID"] = os.environ.get("MOTO_ACCOUNT_ID", "123456789012")
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from moto.s3.models import s3_backends
    from werkzeug.serving import make_server

    class Handler(MotoRequestHandler):
        def make_environ(self) -> dict[str, Any]:
            environ = super().make_environ()
            environ[RAW_HEADERS] = list(self.headers.items())  # as sent, underscores too
            return environ

    backend = s3_backends[os.environ["MOTO_ACCOUNT_ID"]]["aws"]
    store = ObjectStore(Path(config.data_dir))
    restored = store.restore(backend)
    for bucket in config.buckets:
        if bucket not in backend.buckets:
            backend.create_bucket(bucket, config.region)
    store.sync(backend)
    front = AuthenticatingFront(DomainDispatcherApplication(create_backend_app),
                                config.credentials, store, backend)  # fmt: skip
    server = make_server("127.0.0.1", config.port, front, threaded=True, request_handler=Handler)
    print(f"S3 endpoint (moto, signed requests only) on 127.0.0.1:{server.port}, "
          f"{restored} objects restored from {config.data_dir}", flush=True)  # fmt: skip
    return server


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m mlflow_platform.local.s3_endpoint CONFIG.json")
    server = serve(S3EndpointConfig.load(Path(args[0])))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
