"""SendGrid tools: send one templated email."""

from __future__ import annotations

from pydantic import Field

from kernel.contracts import ToolModel
from kernel.tools.defaults import MESSAGE

# --- SendGrid ------------------------------------------------------------------------


class SendEmailInput(ToolModel):
    to: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    template: str = Field(pattern=r"^[a-z0-9_]+$")
    subject: str = Field(max_length=200)
    variables: dict[str, str] = Field(default_factory=dict)
    category: str = "transactional"


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
