"""Models the order-to-cash workflows, their activities and the starters share.

Pure pydantic (no I/O, no Temporal): workflow modules import it, so does everything
that starts, signals or serves a workflow. Durations are ``timedelta`` so tests and the
demo can run an approval or a shipment wait in seconds.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kernel.catalog import PrintfulRecipient
from kernel.policy import RunPolicy

ApprovalStatus = Literal["pending", "approved", "denied", "expired"]

# Names of the workflow types, as registered with Temporal (and used by the ingress).
ORDER_FULFILL = "OrderFulfill"
REFUND = "Refund"

# Activities that are plumbing, not provider tools (they touch only our own database).
LOAD_FLOW_CONTEXT = "autobiz.load_flow_context"
HITL_OPEN = "autobiz.hitl_open"
HITL_NOTE = "autobiz.hitl_note"
HITL_CLOSE = "autobiz.hitl_close"
ORDER_STATE_WRITE = "autobiz.order_state_write"


def order_workflow_id(tenant_id: str, order_id: str) -> str:
    return f"order:{tenant_id}:{order_id}"


def refund_workflow_id(tenant_id: str, refund_request_id: str) -> str:
    return f"refund:{tenant_id}:{refund_request_id}"


def printful_external_id(tenant_id: str, order_id: str) -> str:
    """The order key as Printful sees it (≤ 32 chars, stable): ``{order}-{tenant hash}``."""
    digest = hashlib.sha256(f"{tenant_id}:{order_id}".encode()).hexdigest()
    legacy = order_id.rsplit("/", 1)[-1]
    head = legacy[:20]
    return f"{head}-{digest[: 31 - len(head)]}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApproverInfo(_Model):
    id: str
    roles: tuple[str, ...]
    email: str | None = None


class ApprovalTiming(_Model):
    """How long a request waits, when to remind, when to escalate. ``timeout`` None:
    the HITL rule's timeout from the tenant's config."""

    timeout: timedelta | None = None
    remind_before: timedelta = timedelta(hours=1)
    escalate_after: timedelta = timedelta(hours=4)


class FlowContext(_Model):
    """The slice of a tenant's BusinessConfig one run needs (no file reads in workflows)."""

    policy: RunPolicy
    approvers: tuple[ApproverInfo, ...] = ()
    ops_email: str | None = None
    customer_emails: bool = True
    timing: ApprovalTiming = ApprovalTiming()


class FlowContextRequest(_Model):
    tenant_id: str
    workflow_type: str


# --- approvals ------------------------------------------------------------------------


class Decision(_Model):
    """What an approver sends (the ``decide`` update, or the ``decide_signal`` signal)."""

    tenant_id: str
    approver: str
    approve: bool
    request_id: str | None = None  # None: the request pending now
    reason: str | None = Field(default=None, max_length=500)


class DecisionResult(_Model):
    request_id: str
    status: ApprovalStatus
    decided_by: str | None
    decided_at: datetime | None


class ApprovalView(_Model):
    request_id: str
    action: str
    roles: tuple[str, ...]
    amount_minor: int | None = None
    currency: str | None = None
    requested_at: datetime
    expires_at: datetime
    status: ApprovalStatus = "pending"
    escalation_level: int = 0
    decided_by: str | None = None
    decided_role: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None


class HitlOpen(_Model):
    tenant_id: str
    request_id: str
    workflow_id: str
    run_id: str
    action: str
    required_role: str
    amount_minor: int | None = None
    currency: str | None = None
    requested_at: datetime
    expires_at: datetime
    details: dict[str, Any] = Field(default_factory=dict)


class HitlNote(_Model):
    """A reminder or an escalation, recorded on the request row."""

    tenant_id: str
    request_id: str
    kind: Literal["reminder", "escalation"]
    escalation_level: int
    at: datetime
    notified: tuple[str, ...] = ()


class HitlClose(_Model):
    tenant_id: str
    request_id: str
    status: Literal["approved", "denied", "expired"]
    decided_by: str | None = None
    decided_at: datetime
    reason: str | None = None


class OrderStateWrite(_Model):
    tenant_id: str
    order_id: str
    state: str
    expected_version: int = Field(ge=0)
    data: dict[str, Any] = Field(default_factory=dict)


class OrderStateWritten(_Model):
    version: int
    applied: bool


# --- status ---------------------------------------------------------------------------


class FlowStatus(_Model):
    workflow_id: str
    tenant_id: str
    state: str
    approval: ApprovalView | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    cost_micros: int = 0
    error: str | None = None


# --- OrderFulfill ---------------------------------------------------------------------


class ShipmentNotice(_Model):
    """The ``printful_shipment`` signal (the ingress sends ``printful_event`` envelopes)."""

    carrier: str
    tracking_number: str
    tracking_url: str | None = None


class OrderFulfillInput(BaseModel):
    """Started by the CLI/starters (with ``context``) or by the ingress (a
    ``WorkflowTrigger``: unknown fields ignored, ``context`` loaded by the worker)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant_id: str
    order_id: str
    payment_intent: str | None = None
    ship_to: PrintfulRecipient | None = None
    context: FlowContext | None = None
    principal: str = "system:order_fulfill"
    shipment_wait: timedelta = timedelta(days=14)
    shipment_polls: int = Field(default=3, ge=0)
    default_variant_id: int = 4012


class OrderFulfillResult(_Model):
    workflow_id: str
    state: str
    captured_minor: int = 0
    currency: str | None = None
    printful_order_id: int | None = None
    fulfillment_id: str | None = None
    tracking_number: str | None = None
    email_message_id: str | None = None
    cost_micros: int = 0


# --- Refund ---------------------------------------------------------------------------


class RefundInput(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant_id: str
    refund_request_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    order_id: str
    payment_intent_id: str
    amount_minor: int = Field(gt=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] = "requested_by_customer"
    note: str | None = Field(default=None, max_length=500)
    context: FlowContext | None = None
    principal: str = "system:refund"


class RefundResult(_Model):
    workflow_id: str
    state: Literal["refunded", "denied", "expired", "rejected", "failed"]
    stripe_refund_id: str | None = None
    shopify_refund_id: str | None = None
    amount_minor: int = 0
    currency: str | None = None
    approval: ApprovalView | None = None
    cost_micros: int = 0
    reason: str | None = None
