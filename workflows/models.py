"""Models the order-to-cash workflows, their activities and the starters share.

Pure pydantic (no I/O, no Temporal): workflow modules import it, so does everything
that starts, signals or serves a workflow. Durations are ``timedelta`` so tests and the
demo can run an approval or a shipment wait in seconds.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from kernel.catalog import PrintfulRecipient
from kernel.config import DunningConfig
from kernel.decision_proof import DEFAULT_MAX_AGE, DEFAULT_MAX_SKEW, DecisionProof
from kernel.policy import RunPolicy

ApprovalStatus = Literal["pending", "approved", "denied", "expired"]

# Names of the workflow types, as registered with Temporal (and used by the ingress).
ORDER_FULFILL = "OrderFulfill"
REFUND = "Refund"
PAYMENT_FAILURE = "PaymentFailure"

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


def payment_failure_workflow_id(tenant_id: str, payment_intent_id: str) -> str:
    """Matches the ingress route for ``payment_intent.payment_failed``."""
    return f"payment-failure:{tenant_id}:{payment_intent_id}"


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
    the HITL rule's timeout from the tenant's config. ``proof_max_age`` / ``proof_max_skew``:
    how old a decision's proof may be, and how far ahead of the workflow's clock."""

    timeout: timedelta | None = None
    remind_before: timedelta = timedelta(hours=1)
    escalate_after: timedelta = timedelta(hours=4)
    proof_max_age: timedelta = DEFAULT_MAX_AGE
    proof_max_skew: timedelta = DEFAULT_MAX_SKEW


class FlowContext(_Model):
    """The slice of a tenant's BusinessConfig one run needs (no file reads in workflows)."""

    policy: RunPolicy
    approvers: tuple[ApproverInfo, ...] = ()
    ops_email: str | None = None
    customer_emails: bool = True
    timing: ApprovalTiming = ApprovalTiming()
    dunning: DunningConfig = DunningConfig()


class FlowContextRequest(_Model):
    tenant_id: str
    workflow_type: str


# --- approvals ------------------------------------------------------------------------


class Decision(_Model):
    """What an approver sends (the ``decide`` update, or the ``decide_signal`` signal).

    ``proof`` is required by the validator (``kernel.decision_proof``); the default None
    only keeps decisions recorded before proofs existed readable, so old histories replay.
    A signed decision names its ``request_id``."""

    tenant_id: str
    approver: str
    approve: bool
    request_id: str | None = None  # None: the request pending now (unsigned only)
    reason: str | None = Field(default=None, max_length=500)
    proof: DecisionProof | None = None


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


# --- PaymentFailure -------------------------------------------------------------------

DeclineClass = Literal["hard", "soft"]


class PaymentFailureInput(BaseModel):
    """Started by the starters (with ``context``) or by the ingress (a ``WorkflowTrigger``:
    ``payment_intent`` and maybe ``order_id``; its other fields are ignored, ``context``
    is loaded by the worker). ``dunning`` overrides the tenant's schedule."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant_id: str
    payment_intent: str | None = None
    order_id: str | None = None
    context: FlowContext | None = None
    dunning: DunningConfig | None = None
    principal: str = "system:payment_failure"


class PaymentFailureResult(_Model):
    workflow_id: str
    state: str
    payment_intent_id: str
    order_id: str | None = None
    decline_class: DeclineClass | None = None
    decline_code: str | None = None
    reminders_sent: int = 0
    payment_status: str | None = None
    cost_micros: int = 0
    reason: str | None = None


# --- OrderCancellation ----------------------------------------------------------------

ORDER_CANCELLATION = "OrderCancellation"
# Reads the order's projection row, so a second writer continues from its version.
ORDER_STATE_READ = "autobiz.order_state_read"

CancelReason = Literal["CUSTOMER", "DECLINED", "FRAUD", "INVENTORY", "OTHER", "STAFF"]
CancellationState = Literal["cancelled", "exception", "rejected", "expired", "failed"]


def cancellation_workflow_id(tenant_id: str, order_id: str) -> str:
    """Matches the ingress route for Shopify ``orders/cancelled``."""
    return f"cancel:{tenant_id}:{order_id}"


class CancelRequest(_Model):
    """The ``cancel_requested`` signal to a running OrderFulfill: stop before the next side
    effect, end ``cancelled``, undo nothing (the cancellation flow does), and answer the
    order's cancellation workflow (``cancellation_workflow_id``) with ``fulfill_stopped``."""

    reason: CancelReason = "CUSTOMER"
    requested_by: str


class FulfillStopped(_Model):
    """OrderFulfill's answer to ``cancel_requested`` (the ``fulfill_stopped`` signal)."""

    workflow_id: str
    stopped: bool  # False: it finished (shipped, or failed) instead of stopping
    state: str  # where it stopped, or the state it finished in


class OrderStateKey(_Model):
    tenant_id: str
    order_id: str


class OrderStateRow(_Model):
    version: int
    state: str
    data: dict[str, Any] = Field(default_factory=dict)


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


class CancellationException(_Model):
    """Why a cancellation was handed to people instead of done. Shaped to be the input
    of the FulfillmentException workflow (WF06) once it exists."""

    tenant_id: str
    order_id: str
    kind: Literal["printful_in_production", "payment_unlocated", "payment_unsettled"]
    detail: str
    printful_order_id: int | None = None
    printful_status: str | None = None
    payment_intent_id: str | None = None
    fulfillment_stopped: bool = False


class OrderCancellationResult(_Model):
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
    approval: ApprovalView | None = None
    cost_micros: int = 0
    reason: str | None = None


# --- Reconciliation -------------------------------------------------------------------

RECONCILIATION = "Reconciliation"
RECONCILE_DRIFT = "ReconcileDrift"
# Plumbing: which orders and payments a run checks, and the drift rows it writes.
RECONCILE_SCOPE = "autobiz.reconcile_scope"
RECONCILE_RECORD = "autobiz.reconcile_record"
RECONCILE_RESOLVE = "autobiz.reconcile_resolve"

DriftKind = Literal[
    "refund_outside", "printful_cancelled_outside", "capture_missing", "amount_mismatch"
]
DriftStatus = Literal["open", "repaired", "pending_approval", "dismissed"]
FINANCIAL_DRIFT: frozenset[str] = frozenset(
    {"refund_outside", "capture_missing", "amount_mismatch"}
)


def reconciliation_workflow_id(tenant_id: str, run_key: str) -> str:
    """``reconcile:{tenant}:{window end or run key}`` (a schedule appends its own time)."""
    return f"reconcile:{tenant_id}:{run_key}"


def reconcile_schedule_id(tenant_id: str) -> str:
    return f"reconcile-schedule:{tenant_id}"


def drift_workflow_id(tenant_id: str, drift_id: int) -> str:
    """The repair (approval) workflow of one financial drift row."""
    return f"reconcile-drift:{tenant_id}:{drift_id}"


class ReconciliationInput(BaseModel):
    """Started by ``autobiz reconcile run``, the tenant's schedule, or the plain CLI (then
    ``context`` is loaded by the worker). The window is ``[window_start, window_end]``;
    without them it is the ``window`` before the run's start."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant_id: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    window: timedelta = timedelta(hours=24)
    context: FlowContext | None = None
    principal: str = "system:reconciliation"
    max_orders: int = Field(default=100, ge=1, le=1000)
    # Who acknowledges a financial drift no tool can repair (capture/amount), how long
    # they have (the context's ``timing.timeout`` overrides it, as for tool approvals).
    acknowledge_roles: tuple[str, ...] = ("finance",)
    acknowledge_timeout: timedelta = timedelta(hours=24)


class ScopeRequest(_Model):
    tenant_id: str
    window_start: datetime
    window_end: datetime
    # PaymentIntents Stripe shows refunds for in the window (kept when they are ours).
    payment_intents: tuple[str, ...] = ()
    max_orders: int = 100


class OrderView(_Model):
    """An order_state row as reconciliation reads it."""

    order_id: str
    state: str
    version: int
    printful_order_id: int | None = None
    workflow_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class PaymentView(_Model):
    """A capture our receipts record, and the refunds our receipts account for."""

    payment_intent_id: str
    order_id: str | None = None
    captured_minor: int
    currency: str
    accounted_refunds: tuple[str, ...] = ()


class ReconcileScope(_Model):
    orders: tuple[OrderView, ...] = ()
    payments: tuple[PaymentView, ...] = ()
    truncated: bool = False


class Drift(_Model):
    """One difference between our records and a provider, as a run found it."""

    kind: DriftKind
    entity_ref: str
    order_id: str | None = None
    financial: bool
    expected: dict[str, Any] = Field(default_factory=dict)
    actual: dict[str, Any] = Field(default_factory=dict)
    action: str


class DriftBatch(_Model):
    tenant_id: str
    run_id: str  # the reconciliation workflow id
    drifts: tuple[Drift, ...]


class DriftRow(_Model):
    """A ``reconciliation`` row."""

    drift_id: int
    kind: str
    entity_ref: str
    order_id: str | None = None
    financial: bool
    expected: dict[str, Any] = Field(default_factory=dict)
    actual: dict[str, Any] = Field(default_factory=dict)
    action: str
    status: DriftStatus
    run_id: str
    last_run_id: str
    seen_count: int = 1
    detected_at: datetime
    resolved_at: datetime | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class DriftResolve(_Model):
    """Move a row to ``status`` if it is in one of ``from_statuses`` (a retry that finds it
    already there with the same action is a no-op)."""

    tenant_id: str
    drift_id: int
    status: DriftStatus
    action: str
    from_statuses: tuple[DriftStatus, ...]
    details: dict[str, Any] = Field(default_factory=dict)


class DriftResolved(_Model):
    row: DriftRow
    changed: bool


class DriftRepairInput(_Model):
    tenant_id: str
    drift: DriftRow
    context: FlowContext
    reconciliation_id: str
    principal: str = "system:reconciliation"
    acknowledge_roles: tuple[str, ...] = ("finance",)
    acknowledge_timeout: timedelta = timedelta(hours=24)


class DriftRepairResult(_Model):
    workflow_id: str
    drift_id: int
    kind: str
    status: DriftStatus
    action: str
    approval: ApprovalView | None = None
    shopify_refund_id: str | None = None
    cost_micros: int = 0


class ReconciliationResult(_Model):
    workflow_id: str
    tenant_id: str
    window_start: datetime
    window_end: datetime
    orders_checked: int = 0
    payments_checked: int = 0
    refunds_seen: int = 0
    truncated: bool = False
    # Every drift this run saw (new or known), as the table stands after the run.
    drifts: tuple[DriftRow, ...] = ()
    # drift id -> the ReconcileDrift workflow asking for its approval.
    repairs: dict[str, str] = Field(default_factory=dict)
    cost_micros: int = 0


class DriftRows(_Model):
    rows: tuple[DriftRow, ...] = ()
