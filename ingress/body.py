"""Reading a request body within a hard limit, before anything looks at its content.

Order of refusals: no ``Content-Length`` → 411 (providers always send one; a chunked
body of unknown length is refused rather than buffered); a ``Content-Length`` that is not
a number → 400; one over the limit → 413 without reading a byte; any
``Content-Encoding`` other than ``identity`` → 415 (a compressed body is never
inflated, so a gzip bomb costs nothing); a body that turns out longer than announced or
than the limit → 413 as soon as the limit is crossed.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request


class BodyRejected(Exception):
    def __init__(self, status: int, outcome: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome
        self.message = message


async def read_limited_body(request: Request, limit: int) -> bytes:
    raw_length = request.headers.get("content-length")
    if raw_length is None:
        raise BodyRejected(411, "rejected_no_length", "Content-Length is required")
    if not raw_length.strip().isdigit() or not raw_length.isascii():
        raise BodyRejected(400, "rejected_bad_length", "Content-Length is not a number")
    length = int(raw_length)
    if length > limit:
        raise BodyRejected(413, "rejected_too_large", f"body over {limit} bytes")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise BodyRejected(415, "rejected_encoding", "compressed bodies are not accepted")
    chunks: list[bytes] = []
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit or received > length:
                raise BodyRejected(413, "rejected_too_large", "body longer than announced")
            chunks.append(chunk)
    except ClientDisconnect:
        raise BodyRejected(400, "rejected_disconnected", "client went away") from None
    if received != length:
        raise BodyRejected(400, "rejected_bad_length", "body shorter than announced")
    return b"".join(chunks)
