"""SendGrid tools: send one templated email."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from kernel.contracts import ToolModel
from kernel.tools.defaults import MESSAGE

# --- SendGrid ------------------------------------------------------------------------


class SendEmailInput(ToolModel):
    to: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    template: str = Field(pattern=r"^[a-z0-9_]+$")
    subject: str = Field(max_length=200)
    variables: dict[str, str] = Field(default_factory=dict)
    category: str = "transactional"
    # A reply: the Message-ID it answers (sent as In-Reply-To and References).
    in_reply_to: str | None = Field(default=None, pattern=r"^<[^<>\s]{1,900}>$")

    @model_serializer(mode="wrap")
    def _without_unset_reply(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out when unset, so an email that is no reply hashes (idempotency keys,
        # loop fingerprints) exactly as before replies existed.
        data: dict[str, Any] = handler(self)
        if data.get("in_reply_to") is None:
            data.pop("in_reply_to", None)
        return data


class SendEmailOutput(ToolModel):
    message_id: str
    status: str


SEND_EMAIL = MESSAGE.contract(
    name="sendgrid.send_email",
    version="1",
    description="Send a templated customer email.",
    input_model=SendEmailInput,
    output_model=SendEmailOutput,
    provider="sendgrid",
    scopes={"email:send"},
    trace_fields={"template", "category", "message_id", "status"},
)
