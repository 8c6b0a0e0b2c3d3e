"""SendGrid v3 ``/mail/send``: validates the shape, keeps every accepted message in an
outbox the control API shows. ``mail_settings.sandbox_mode.enable`` answers 200 (validated,
never delivered), otherwise 202 with ``X-Message-Id``, as SendGrid does."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from autobiz.settings import Settings
from sandbox.accounts import AccountBook
from sandbox.faults import processing_delay


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
