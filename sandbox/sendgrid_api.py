"""SendGrid v3 ``/mail/send``: validates the shape, keeps every accepted message in an
outbox the control API shows. ``mail_settings.sandbox_mode.enable`` answers 200 (validated,
never delivered), otherwise 202 with ``X-Message-Id``, as SendGrid does. ``headers``
(top level or per personalization) must map names to strings, without the ones SendGrid
reserves.

Inbound Parse: :meth:`SendGridSandbox.deliver_inbound` posts a customer's email to the
merchant's parse URL as SendGrid does — ``multipart/form-data`` with the default
payload's fields, the raw ``headers`` block carrying a ``Message-ID``, and the parse
URL's credential as HTTP Basic (``POST /_control/sendgrid/inbound``)."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from email.utils import format_datetime, formataddr
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from autobiz.settings import Settings
from sandbox.accounts import AccountBook, SandboxAccount
from sandbox.faults import processing_delay

# Headers SendGrid refuses in ``headers`` (it sets them itself).
RESERVED_HEADERS = frozenset(
    {
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    }
)
INBOUND_DOMAIN = "parse.autobiz.test"


def _bad_headers(headers: Any) -> str | None:
    if headers is None:
        return None
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        return "headers must be an object of string values"
    reserved = sorted(k for k in headers if k.lower() in RESERVED_HEADERS)
    return f"headers may not contain {', '.join(reserved)}" if reserved else None


class InboundAttachment(BaseModel):
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = "application/octet-stream"
    content: str = ""  # the bytes, as text


class InboundEmail(BaseModel):
    """Body of ``POST /_control/sendgrid/inbound``: a customer writes to ``tenant``."""

    tenant: str = Field(min_length=1, max_length=64)
    from_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    from_name: str | None = Field(default=None, max_length=200)
    to: str | None = None  # default: the merchant's parse address
    subject: str = Field(default="", max_length=998)
    text: str = ""
    html: str | None = None
    message_id: str | None = Field(default=None, max_length=900)  # default: a fresh one
    in_reply_to: str | None = Field(default=None, max_length=900)
    attachments: list[InboundAttachment] = Field(default_factory=list, max_length=10)
    # The parse URL's credential as configured (a test sends a wrong one on purpose).
    user: str | None = None
    password: str | None = None


def inbound_form(email: InboundEmail, account: SandboxAccount) -> tuple[dict[str, str], list[Any]]:
    """The default Inbound Parse payload of ``email`` (fields, file parts) and its id."""
    to = email.to or f"support@{account.tenant}.{INBOUND_DOMAIN}"
    sender = formataddr((email.from_name or "", email.from_email))
    message_id = email.message_id or f"<{secrets.token_hex(12)}@mail.customer.test>"
    lines = [
        "Received: from mail.customer.test (mail.customer.test [203.0.113.7]) by "
        f"mx.sendgrid.net with ESMTP; {format_datetime(datetime.now(UTC))}",
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {email.subject}",
        f"Date: {format_datetime(datetime.now(UTC))}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
        'Content-Type: multipart/alternative; boundary="b1"',
    ]
    if email.in_reply_to:
        lines += [f"In-Reply-To: {email.in_reply_to}", f"References: {email.in_reply_to}"]
    fields = {
        "headers": "\n".join(lines) + "\n",
        "dkim": "{@customer.test : pass}",
        "to": to,
        "from": sender,
        "subject": email.subject,
        "text": email.text,
        "sender_ip": "203.0.113.7",
        "envelope": json.dumps({"to": [to], "from": email.from_email}),
        "attachments": str(len(email.attachments)),
        "charsets": json.dumps(
            {"to": "UTF-8", "from": "UTF-8", "subject": "UTF-8", "text": "utf-8", "html": "utf-8"}
        ),
        "SPF": "pass",
        "spam_score": "0.1",
        "spam_report": "Spam detection software has not identified this message as spam.",
    }
    if email.html is not None:
        fields["html"] = email.html
    files: list[Any] = []
    if email.attachments:
        info = {
            f"attachment{i}": {"filename": a.filename, "name": a.filename, "type": a.content_type}
            for i, a in enumerate(email.attachments, 1)
        }
        fields["attachment-info"] = json.dumps(info)
        files = [
            (f"attachment{i}", (a.filename, a.content.encode(), a.content_type))
            for i, a in enumerate(email.attachments, 1)
        ]
    return fields, files


def multipart_form(fields: dict[str, str], files: list[Any]) -> tuple[bytes, str]:
    """``multipart/form-data`` as Inbound Parse posts it (always multipart, files or not)."""
    boundary = f"xYzZY{secrets.token_hex(12)}"
    out = bytearray()
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode("utf-8") + b"\r\n"
    for name, (filename, content, content_type) in files:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'
        ).encode()
        out += content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def parse_url_parts(url: str) -> tuple[str, tuple[str, str] | None]:
    """A parse URL as SendGrid takes it (``https://user:password@host/path``): the URL it
    posts to, and the credential it sends as HTTP Basic."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return bare, (parts.username, parts.password or "")


def _error(message: str, field: str | None, status: int = 400) -> Response:
    return JSONResponse(
        {"errors": [{"message": message, "field": field, "help": None}]}, status_code=status
    )


class SendGridSandbox:
    def __init__(self, settings: Settings, accounts: AccountBook) -> None:
        self.settings = settings
        self.accounts = accounts
        self.outbox: list[dict[str, Any]] = []

    def reset(self) -> None:
        self.outbox.clear()

    def routes(self) -> list[BaseRoute]:
        return [Route("/v3/mail/send", self.send, methods=["POST"])]

    def parse_url(self, account: SandboxAccount, base: str | None) -> str | None:
        """The merchant's parse URL as configured at SendGrid: the ingress's Inbound Parse
        endpoint under ``base`` (the webhook target), the account's credential in it."""
        if base is None:
            return None
        parts = urlsplit(base.rstrip("/"))
        netloc = parts.netloc
        if account.sendgrid_parse_user and account.sendgrid_parse_password:
            netloc = f"{account.sendgrid_parse_user}:{account.sendgrid_parse_password}@{netloc}"
        return urlunsplit((parts.scheme, netloc, f"{parts.path}/sendgrid/inbound", parts.query, ""))

    async def deliver_inbound(
        self, email: InboundEmail, url: str, account: SandboxAccount
    ) -> dict[str, Any]:
        """Post ``email`` to ``url`` as Inbound Parse does; the ingress's answer."""
        fields, files = inbound_form(email, account)
        target, auth = parse_url_parts(url)
        if email.user is not None or email.password is not None:
            user, password = auth or ("", "")
            auth = (
                email.user if email.user is not None else user,
                email.password if email.password is not None else password,
            )
        body, content_type = multipart_form(fields, files)
        async with httpx.AsyncClient(timeout=15.0) as http:
            response = await http.post(
                target,
                content=body,
                headers={"Content-Type": content_type, "User-Agent": "Sendlib/1.0"},
                auth=auth or httpx.USE_CLIENT_DEFAULT,
            )
        try:
            answer: Any = response.json()
        except ValueError:
            answer = response.text[:500]
        message_id = fields["headers"].split("Message-ID: ", 1)[1].split("\n", 1)[0]
        return {"message_id": message_id, "status": response.status_code, "answer": answer}

    async def send(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        account = self.accounts.by_sendgrid_key(auth.removeprefix("Bearer ").strip())
        if account is None or not auth.startswith("Bearer "):
            return _error(
                "The provided authorization grant is invalid, expired, or revoked", None, 401
            )
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error("Bad Request", None)
        personalizations = body.get("personalizations") or []
        if not personalizations:
            return _error(
                "The personalizations field is required and must have at least one "
                "personalization.",
                "personalizations",
            )
        recipients = [to.get("email") for p in personalizations for to in p.get("to") or []]
        if not recipients or not all(recipients):
            return _error(
                "The to array is required for all personalization objects.", "personalizations.0.to"
            )
        if not (body.get("from") or {}).get("email"):
            return _error("The from object must be provided for every email send.", "from")
        for headers in [body.get("headers"), *(p.get("headers") for p in personalizations)]:
            if (problem := _bad_headers(headers)) is not None:
                return _error(problem, "headers")
        if not body.get("template_id") and not body.get("content"):
            return _error(
                "Unless a valid template_id is provided, the content parameter is required.",
                "content",
            )
        await processing_delay(request)
        sandbox = bool(((body.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable"))
        message_id = secrets.token_urlsafe(16)
        self.outbox.append(
            {
                "message_id": message_id,
                "account": account.tenant,
                "received_at": datetime.now(UTC).isoformat(),
                "sandbox_mode": sandbox,
                "recipients": recipients,
                "request": body,
            }
        )
        if sandbox:
            return Response(status_code=200, headers={"X-Message-Id": message_id})
        return Response(status_code=202, headers={"X-Message-Id": message_id})
