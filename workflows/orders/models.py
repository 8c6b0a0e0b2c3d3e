"""The orders context's models: OrderFulfill (WF01) and OrderCancellation (WF04)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from kernel.frozen import Frozen
from kernel.tools.printful import PrintfulRecipient
from workflows.common.models import ApprovalView, FlowContext

# --- OrderFulfill ---------------------------------------------------------------------


class ShipmentNotice(Frozen):
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


class OrderFulfillResult(Frozen):
    workflow_id: str
    state: str
    captured_minor: int = 0
    currency: str | None = None
    printful_order_id: int | None = None
    fulfillment_id: str | None = None
    tracking_number: str | None = None
    email_message_id: str | None = None
    cost_micros: int = 0


CancelReason = Literal["CUSTOMER", "DECLINED", "FRAUD", "INVENTORY", "OTHER", "STAFF"]
CancellationState = Literal["cancelled", "exception", "rejected", "expired", "failed", "abandoned"]


class CancelRequest(Frozen):
    """The ``cancel_requested`` signal to a running OrderFulfill: stop before the next side
    effect, end ``cancelled``, undo nothing (the cancellation flow does), and answer the
    order's cancellation workflow (``cancellation_workflow_id``) with ``fulfill_stopped``."""

    reason: CancelReason = "CUSTOMER"
    requested_by: str


class FulfillStopped(Frozen):
    """OrderFulfill's answer to ``cancel_requested`` (the ``fulfill_stopped`` signal)."""

    workflow_id: str
    stopped: bool  # False: it finished (shipped, or failed) instead of stopping
    state: str  # where it stopped, or the state it finished in


class OrderCancellationInput(BaseModel):
    """Started by the CLI/starters (with ``context``) or by the ingress (a
    ``WorkflowTrigger``: its ``payment_intent`` is this ``payment_intent_id``, its other
    fields are ignored, ``context`` is loaded by the worker)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant_id: str
    order_id: str = Field(min_length=1, max_length=64)
    payment_intent_id: str | None = Field(
        default=None,
        pattern=r"^pi_[A-Za-z0-9_]+$",
        validation_alias=AliasChoices("payment_intent_id", "payment_intent"),
    )
    reason: CancelReason = "CUSTOMER"
    context: FlowContext | None = None
    principal: str = "system:order_cancellation"
    # How long to wait for a running OrderFulfill to confirm it stopped.
    stop_wait: timedelta = timedelta(minutes=10)


class CancellationException(Frozen):
    """Why a cancellation was handed to people instead of done. ``printful_in_production``
    is handed to a FulfillmentException child (WF06, topic ``cancel_requested``); the
    payment kinds go to ops by email."""

    tenant_id: str
    order_id: str
    kind: Literal["printful_in_production", "payment_unlocated", "payment_unsettled"]
    detail: str
    printful_order_id: int | None = None
    printful_status: str | None = None
    payment_intent_id: str | None = None
    fulfillment_stopped: bool = False


class OrderCancellationResult(Frozen):
    workflow_id: str
    state: CancellationState
    order_id: str
    fulfillment_stopped: bool = False  # a running OrderFulfill was stopped
    printful_order_id: int | None = None
    printful_status: str | None = None
    payment_intent_id: str | None = None
    payment_action: Literal["void", "refund", "none"] = "none"
    amount_minor: int = 0
    currency: str | None = None
    stripe_refund_id: str | None = None
    shopify_cancelled: bool = False
    email_message_id: str | None = None
    exception: CancellationException | None = None
    # The FulfillmentException child the in-production case was handed to, and its outcome.
    exception_workflow_id: str | None = None
    exception_outcome: str | None = None
    approval: ApprovalView | None = None
    cost_micros: int = 0
    reason: str | None = None


# --- FulfillmentException (WF06) ----------------------------------------------------

# Plumbing: the tenant's ``fulfillment_exception`` settings, read from the worker's config.
EXCEPTION_SETTINGS = "autobiz.exception_settings"
# The child tells its OrderFulfill where it stands (its status then shows the exception).
EXCEPTION_UPDATE = "exception_update"

ExceptionTopic = Literal["order_failed", "order_put_hold", "cancel_requested"]
ExceptionCause = Literal[
    "address", "transient", "printfile", "billing", "unknown", "cancel_in_production"
]
ExceptionAction = Literal["correct_address", "retry", "fix", "contact_customer"]
ExceptionOutcome = Literal["resolved", "cancelling", "contacted", "unresolved"]
ESCALATION_OPTIONS = ("fix", "cancel_and_refund", "contact_customer")
# ``cancel_requested``: OrderCancellation found the order in production at Printful and
# started this flow (business key ``cancel-requested``: Printful event ids never look like
# it). Nothing to fix; the customer is told it ships, or the cancellation refunds anyway.
CANCEL_REQUESTED_TOPIC = "cancel_requested"
CANCEL_REQUESTED_KEY = "cancel-requested"
CANCEL_IN_PRODUCTION_OPTIONS = ("contact_customer", "cancel_and_refund")


class ExceptionSettingsRequest(Frozen):
    tenant_id: str


class ExceptionSettings(Frozen):
    """``fulfillment_exception`` of the tenant's BusinessConfig (``kernel.config``)."""

    escalation_roles: tuple[str, ...] = ("ops_lead",)
    escalation_timeout: timedelta = timedelta(hours=24)
    max_retries: int = 2
    release_wait: timedelta = timedelta(hours=4)


class Alternative(Frozen):
    action: str
    rejected_because: str


class Diagnosis(Frozen):
    """The triage of one Printful hold or failure: why, from what, what else was weighed
    (and why not), and what to do. ``automatic``: the recommended action is a safe fix
    the flow takes itself (no money moves, nothing is final); otherwise a person decides.
    No customer data: evidence names fields, never their values."""

    cause: ExceptionCause
    summary: str
    evidence: tuple[str, ...]
    alternatives: tuple[Alternative, ...]
    recommended: ExceptionAction
    automatic: bool


class FulfillmentExceptionInput(BaseModel):
    """Started by the order's OrderFulfill (a child) on ``order_failed`` / ``order_put_hold``,
    or by its OrderCancellation (a child, ``cancel_requested``) for an order in production."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant_id: str
    order_id: str = Field(min_length=1, max_length=64)
    printful_order_id: int = Field(gt=0)
    event_id: str = Field(min_length=1, max_length=128)
    topic: ExceptionTopic
    reason: str = Field(default="", max_length=1000)
    # Re-submissions of a transient failure this order has had already (bounded per order).
    retries_done: int = Field(default=0, ge=0)
    payment_intent_id: str | None = None
    context: FlowContext | None = None
    principal: str = "system:fulfillment_exception"


class ExceptionUpdate(Frozen):
    """The ``exception_update`` signal to OrderFulfill: the child's state and diagnosis."""

    workflow_id: str
    state: str
    cause: ExceptionCause | None = None
    recommended: ExceptionAction | None = None
    summary: str | None = None
    request_id: str | None = None


class FulfillmentExceptionResult(Frozen):
    workflow_id: str
    state: ExceptionOutcome  # the outcome OrderFulfill acts on (the run's last state)
    diagnosis: Diagnosis | None = None
    actions: tuple[str, ...] = ()
    retried: bool = False  # a transient failure re-submitted (counts against max_retries)
    choice: str | None = None
    approval: ApprovalView | None = None
    cancellation_workflow_id: str | None = None
    email_message_id: str | None = None
    cost_micros: int = 0
