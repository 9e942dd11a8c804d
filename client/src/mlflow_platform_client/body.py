"""A request body as SigV4 needs it: bytes, or a binary file botocore hashes and rewinds.

The signature covers the SHA-256 of the whole payload, which must be known before the first
byte is sent. A seekable binary file is hashed by streaming it and seeking back to where it was
(botocore's SigV4Auth does both), so any size signs in constant memory. A generator or another
one-pass iterable (or an unseekable file) can be read only once: it is read into memory and
sent with a Content-Length, up to BUFFER_LIMIT, the most an API Gateway HTTP API accepts in
one request anyway (API Gateway Developer Guide, "Quotas for configuring and running an HTTP
API": payload size, 10 MB); anything larger is refused before sending.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import IO, Any

BUFFER_LIMIT = 10 * 1024 * 1024
"""The most a one-pass body may hold: it is kept in memory to be hashed before it is sent."""

Payload = bytes | IO[bytes]


class BodyError(ValueError):
    """A body that cannot be signed as it is."""


def signable(body: object) -> Payload | None:
    """`body` as it is signed and sent: the same object when it already is one, else bytes."""
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")  # what urllib3 sends for a str body
    if hasattr(body, "read"):
        return _file(body)
    if isinstance(body, Iterable):
        return _buffered(iter(body), what="an iterable body")
    raise BodyError(f"cannot sign a request body of type {type(body).__name__}")


def _file(body: Any) -> Payload:
    if isinstance(body, io.TextIOBase) or isinstance(body.read(0), str):
        raise BodyError(
            "cannot sign a text-mode file body: its bytes on the wire depend on an encoding "
            "the signature cannot know; open the file in binary mode ('rb')"
        )
    try:
        seekable = bool(body.seekable()) if hasattr(body, "seekable") else False
        if seekable:
            body.tell()
    except (OSError, ValueError):
        seekable = False
    if seekable:
        return body
    return _buffered(iter(lambda: body.read(1024 * 1024), b""), what="an unseekable file body")


def _buffered(chunks: Iterable[object], *, what: str) -> bytes:
    buffer = bytearray()
    for chunk in chunks:
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8")
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise BodyError(f"{what} yielded {type(chunk).__name__}, not bytes or str")
        buffer += chunk
        if len(buffer) > BUFFER_LIMIT:
            raise BodyError(
                f"{what} is longer than {BUFFER_LIMIT} bytes: it is read into memory to be "
                "hashed before sending, and an API Gateway HTTP API accepts at most 10 MB per "
                "request; send a seekable binary file instead"
            )
    return bytes(buffer)
