"""The customer-care context's models: WF05 WISMO ("where is my order").

Pure pydantic (no I/O, no Temporal). An :class:`InboundEmail` is read from the payload the
ingress stored for a SendGrid Inbound Parse post (``ingress.inbound_email``); the
workflow's settings come from the worker's compiled config (``WISMO_SETTINGS``), never
from its input, so whoever can start a run cannot pick its model, threshold or reviewers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import getaddresses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kernel.frozen import Frozen
from workflows.common.models import ApprovalView, FlowContext

# Plumbing: the tenant's ``wismo`` settings, read from the worker's config.
WISMO_SETTINGS = "autobiz.wismo_settings"
# The review's approval action (what `autobiz approvals list` shows).
REVIEW_ACTION = "wismo_review"
# Longest customer text the draft's prompt is given (the rest is cut, never dropped
# silently: the reviewer sees the whole email in the event store).
MAX_MESSAGE_CHARS = 4000

Outcome = Literal[
    "answered",  # the drafted reply went out
    "answered_after_review",  # a reviewer approved it (maybe edited)
    "not_customer",  # the sender is not the order's customer: a polite non-answer
    "no_order",  # no order found for the sender: a polite non-answer
    "denied",  # the reviewer said no: nothing sent
    "expired",  # nobody reviewed in time: nothing sent, ops told
    "failed",
]


class InboundEmail(Frozen):
    """A customer's email, as the ingress parsed it. ``from_address`` is the address of
    the ``From`` header, case-folded; ``authenticated`` says SendGrid's SPF or DKIM check
    passed for it (an unauthenticated sender is never given order data)."""

    message_id: str = Field(min_length=3, max_length=998)
    # An address a reply can go to (an email without one is unreadable: the run fails
    # INPUT_INVALID rather than guess).
    from_address: str = Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    from_name: str = Field(default="", max_length=200)
    subject: str = Field(default="", max_length=998)
    text: str = ""
    authenticated: bool = False

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> InboundEmail:
        """From the stored Inbound Parse payload (``ingress.inbound_email``)."""
        name, address = _first_address(str(payload.get("from") or ""))
        return cls(
            message_id=str(payload.get("message_id") or ""),
            from_address=normalised_address(address),
            from_name=name[:200],
            subject=str(payload.get("subject") or "")[:998],
            text=str(payload.get("text") or ""),
            authenticated=_authenticated(payload),
        )


def _first_address(field: str) -> tuple[str, str]:
    found = getaddresses([field])
    return found[0] if found else ("", "")


def normalised_address(address: str) -> str:
    """How two addresses are compared: trimmed, without angle brackets, case-folded."""
    return address.strip().strip("<>").strip().casefold()


def _authenticated(payload: dict[str, Any]) -> bool:
    """SendGrid's verdicts: ``SPF`` is ``pass``, or ``dkim`` reports a pass
    (``{@domain : pass}``)."""
    spf = str(payload.get("SPF") or "").strip().casefold()
    dkim = str(payload.get("dkim") or "").casefold()
    return spf == "pass" or ": pass" in dkim


class WismoSettings(Frozen):
    """``wismo`` of the tenant's BusinessConfig (``kernel.config.WismoConfig``)."""

    model: str = "template-v1"
    fallback_model: str | None = None
    prompt_version: str = "1"
    max_tokens: int = 600
    confidence_threshold: float = 0.75
    review_roles: tuple[str, ...] = ("ops_lead",)
    review_timeout: timedelta = timedelta(hours=24)


class WismoSettingsRequest(Frozen):
    tenant_id: str


class WismoInput(BaseModel):
    """Started by the ingress (a ``WorkflowTrigger``; the email arrives as the start
    signal ``inbound_email``) or directly with ``email`` (tests, replays). ``context``:
    only its waits are kept (``load_context``): a shorter review timeout."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant_id: str
    principal: str = "system:wismo"
    context: FlowContext | None = None
    email: InboundEmail | None = None


class WismoResult(Frozen):
    workflow_id: str
    state: str
    outcome: Outcome
    order_id: str | None = None
    order_name: str | None = None
    review_reason: str | None = None
    reply_message_id: str | None = None
    review: ApprovalView | None = None
    cost_micros: int = 0
    reason: str | None = None
    finished_at: datetime | None = None
