"""A SendGrid Inbound Parse post (``multipart/form-data``) → the payload the store keeps.

SendGrid posts the parsed email as form fields (its "default" payload, not the raw MIME):
``headers`` (the raw header block), ``from``, ``to``, ``cc``, ``subject``, ``text``,
``html``, ``envelope`` (JSON: ``to`` list, ``from``), ``charsets`` (JSON: the character
set of each field), ``SPF``, ``dkim``, ``sender_ip``, ``spam_score``, ``spam_report``,
``attachments`` (a count), ``attachment-info`` (JSON) and one file part per attachment
(``attachment1`` …). Text fields are decoded with the charset ``charsets`` names for them
(UTF-8 when it names none, or one Python does not know).

The dedup key is the email's ``Message-ID`` header, parsed from ``headers`` (SendGrid
retries a post that was not answered 2xx, with the same message). Attachments are kept
as what they are (name, type, size, SHA-256), not their bytes: no flow reads them, and an
event row is no file store. Nothing here decides anything about the email's content.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser, HeaderParser
from typing import Any

TOPIC = "inbound"
MAX_PARTS = 100
# The fields of the default payload (the ingress's OpenAPI document lists them too), the
# JSON-valued ones, and the text ones.
FIELDS = (
    "headers",
    "from",
    "to",
    "cc",
    "subject",
    "text",
    "html",
    "envelope",
    "charsets",
    "SPF",
    "dkim",
    "sender_ip",
    "spam_score",
    "spam_report",
    "attachments",
    "attachment-info",
)
JSON_FIELDS = ("envelope", "charsets", "attachment-info")
TEXT_FIELDS = tuple(f for f in FIELDS if f not in JSON_FIELDS)
MAX_MESSAGE_ID = 998  # RFC 5322's line length


class InboundRefused(ValueError):
    """The post is not an Inbound Parse form (dead-lettered with this reason)."""


def _charset(charsets: dict[str, Any], field: str) -> str:
    name = charsets.get(field)
    if isinstance(name, str):
        try:
            return codecs.lookup(name).name
        except LookupError:
            pass
    return "utf-8"


def _parts(body: bytes, content_type: str | None) -> list[EmailMessage]:
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        raise InboundRefused("malformed_form: not multipart/form-data")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("ascii", "replace")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise InboundRefused("malformed_form: no parts")
    parts = [p for p in message.iter_parts() if isinstance(p, EmailMessage)]
    if not parts or len(parts) > MAX_PARTS:
        raise InboundRefused(f"malformed_form: {len(parts)} parts")
    return parts


def _text(value: str) -> str:
    """What PostgreSQL's text can hold: NUL and lone surrogates replaced."""
    if value.isascii() and "\x00" not in value:
        return value
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def message_id_of(raw_headers: str) -> str | None:
    """The ``Message-ID`` of the email's raw header block (None: it has none)."""
    headers = HeaderParser(policy=policy.HTTP).parsestr(raw_headers, headersonly=True)
    value = headers.get("Message-ID")
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text[:MAX_MESSAGE_ID] or None


def parse_inbound(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The stored payload: the default payload's fields (decoded), the threading headers
    (``message_id``, ``in_reply_to``, ``references``) and the attachments' descriptions."""
    raw: dict[str, bytes] = {}
    files: list[dict[str, Any]] = []
    for part in _parts(body, content_type):
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True)
        content = data if isinstance(data, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files.append(
                {
                    "field": name,
                    "filename": _text(filename[:255]),
                    "content_type": part.get_content_type(),
                    "size": len(content),
                    "sha256": hashlib.sha256(content).hexdigest(),
                }
            )
        elif name not in raw:
            raw[name] = content
    payload: dict[str, Any] = {}
    for field in JSON_FIELDS:
        if field in raw:
            try:
                payload[field] = json.loads(raw[field].decode("utf-8", "replace"))
            except (ValueError, RecursionError):
                payload[field] = None
    charsets = payload.get("charsets") if isinstance(payload.get("charsets"), dict) else {}
    assert isinstance(charsets, dict)
    for field in TEXT_FIELDS:
        if field in raw:
            payload[field] = _text(raw[field].decode(_charset(charsets, field), "replace"))
    payload["attachment_files"] = files
    headers = payload.get("headers")
    raw_headers = headers if isinstance(headers, str) else ""
    parsed = HeaderParser(policy=policy.HTTP).parsestr(raw_headers, headersonly=True)
    payload["message_id"] = message_id_of(raw_headers)
    for key, header in (("in_reply_to", "In-Reply-To"), ("references", "References")):
        value = parsed.get(header)
        payload[key] = " ".join(str(value).split())[:MAX_MESSAGE_ID] if value else None
    return payload


def dedup_id(message_id: str) -> str:
    """The event store's provider event id of an email: its Message-ID, hashed (a header
    may be long; the same hash names the WISMO run, ``workflows.ids.wismo_workflow_id``)."""
    return "message-id:" + hashlib.sha256(message_id.strip().encode()).hexdigest()[:32]
