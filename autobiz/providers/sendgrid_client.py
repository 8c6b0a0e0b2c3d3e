"""SendGrid v3 mail send over httpx, one dynamic template per message kind.

Outside production every message goes with ``mail_settings.sandbox_mode`` on (SendGrid
validates it and delivers nothing) and only to allowlisted recipients. The "receipt row
before sending" that blocks a second send lives in the activity, not here.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, Field

from autobiz.providers.errors import InvalidRequest
from autobiz.providers.http import JsonClient, error_for_status, json_body
from autobiz.providers.hygiene import (
    ensure_host_allowed,
    ensure_recipients_allowed,
    ensure_test_credential,
)
from autobiz.providers.throttle import Throttle
from autobiz.settings import Settings

PROVIDER = "sendgrid"


class Email(BaseModel):
    kind: str = Field(
        description="message kind; selects the template (settings.sendgrid.templates)"
    )
    to: list[str] = Field(min_length=1)
    data: dict[str, Any] = Field(default_factory=dict, description="dynamic_template_data")
    reference: str | None = Field(default=None, description="our key, echoed as a custom arg")
    headers: dict[str, str] = Field(
        default_factory=dict, description="extra headers (a reply's In-Reply-To, References)"
    )


class SentEmail(BaseModel):
    message_id: str | None
    sandbox_mode: bool
    status: int


class SendGridMailer(JsonClient):
    provider = PROVIDER

    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.AsyncClient | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        cfg = settings.sendgrid
        ensure_test_credential(PROVIDER, "sendgrid.api_key", cfg.api_key, settings)
        ensure_host_allowed(PROVIDER, cfg.api_base, settings)
        super().__init__(http, cfg.timeout_seconds, throttle)
        self._settings = settings
        self._cfg = cfg
        self._url = f"{cfg.api_base.rstrip('/')}/v3/mail/send"

    @property
    def sandbox_mode(self) -> bool:
        """Always on outside production; in production, the setting (default off)."""
        if not self._settings.is_production:
            return True
        return bool(self._cfg.sandbox_mode)

    def build_payload(self, email: Email) -> dict[str, Any]:
        template = self._cfg.templates.get(email.kind)
        if template is None:
            raise InvalidRequest(
                f"no template configured for message kind {email.kind!r}",
                provider=PROVIDER,
                provider_code="unknown_kind",
            )
        payload: dict[str, Any] = {
            "personalizations": [
                {"to": [{"email": r} for r in email.to], "dynamic_template_data": email.data}
            ],
            "from": {"email": self._cfg.from_email},
            "template_id": template,
            "mail_settings": {"sandbox_mode": {"enable": self.sandbox_mode}},
            "categories": [email.kind],
        }
        if email.reference:
            payload["custom_args"] = {"autobiz_ref": email.reference}
        if email.headers:
            payload["headers"] = dict(email.headers)
        return payload

    async def send(self, email: Email) -> SentEmail:
        ensure_recipients_allowed(PROVIDER, email.to, self._settings)
        payload = self.build_payload(email)
        response = await self._send(
            "POST",
            self._url,
            headers={"Authorization": f"Bearer {self._cfg.api_key.get_secret_value()}"},
            json=payload,
        )
        if response.status_code not in (200, 202):
            body = json_body(response)
            errors = body.get("errors") if isinstance(body, dict) else None
            message = (
                "; ".join(str(e.get("message")) for e in errors)
                if errors
                else response.reason_phrase
            )
            raise error_for_status(
                PROVIDER, response.status_code, message, code=None, headers=response.headers
            )
        return SentEmail(
            message_id=response.headers.get("x-message-id"),
            sandbox_mode=self.sandbox_mode,
            status=response.status_code,
        )
