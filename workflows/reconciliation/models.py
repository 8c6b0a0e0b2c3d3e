"""The reconciliation context's models: Reconciliation runs and ReconcileDrift repairs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kernel.frozen import Frozen
from workflows.common.models import ApprovalView, FlowContext

# Plumbing: which orders and payments a run checks, and the drift rows it writes.
RECONCILE_SCOPE = "autobiz.reconcile_scope"
RECONCILE_RECORD = "autobiz.reconcile_record"
RECONCILE_RESOLVE = "autobiz.reconcile_resolve"

DriftKind = Literal[
    "refund_outside",
    "printful_cancelled_outside",
    "capture_missing",
    "amount_mismatch",
    # DailyCloseout: a day's captured/refunded total in Stripe differs from our receipts.
    "closeout_mismatch",
]
DriftStatus = Literal["open", "repaired", "pending_approval", "dismissed"]
FINANCIAL_DRIFT: frozenset[str] = frozenset(
    {"refund_outside", "capture_missing", "amount_mismatch", "closeout_mismatch"}
)


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


class ScopeRequest(Frozen):
    tenant_id: str
    window_start: datetime
    window_end: datetime
    # PaymentIntents Stripe shows refunds for in the window (kept when they are ours).
    payment_intents: tuple[str, ...] = ()
    max_orders: int = 100


class OrderView(Frozen):
    """An order_state row as reconciliation reads it."""

    order_id: str
    state: str
    version: int
    printful_order_id: int | None = None
    workflow_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class PaymentView(Frozen):
    """A capture our receipts record, and the refunds our receipts account for."""

    payment_intent_id: str
    order_id: str | None = None
    captured_minor: int
    currency: str
    accounted_refunds: tuple[str, ...] = ()


class ReconcileScope(Frozen):
    orders: tuple[OrderView, ...] = ()
    payments: tuple[PaymentView, ...] = ()
    truncated: bool = False


class Drift(Frozen):
    """One difference between our records and a provider, as a run found it."""

    kind: DriftKind
    entity_ref: str
    order_id: str | None = None
    financial: bool
    expected: dict[str, Any] = Field(default_factory=dict)
    actual: dict[str, Any] = Field(default_factory=dict)
    action: str


class DriftBatch(Frozen):
    tenant_id: str
    run_id: str  # the reconciliation workflow id
    drifts: tuple[Drift, ...]


class DriftRow(Frozen):
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


class DriftResolve(Frozen):
    """Move a row to ``status`` if it is in one of ``from_statuses`` (a retry that finds it
    already there with the same action is a no-op)."""

    tenant_id: str
    drift_id: int
    status: DriftStatus
    action: str
    from_statuses: tuple[DriftStatus, ...]
    details: dict[str, Any] = Field(default_factory=dict)


class DriftResolved(Frozen):
    row: DriftRow
    changed: bool


class DriftRepairInput(Frozen):
    tenant_id: str
    drift: DriftRow
    context: FlowContext
    reconciliation_id: str
    principal: str = "system:reconciliation"
    acknowledge_roles: tuple[str, ...] = ("finance",)
    acknowledge_timeout: timedelta = timedelta(hours=24)


class DriftRepairResult(Frozen):
    workflow_id: str
    drift_id: int
    kind: str
    status: DriftStatus
    action: str
    approval: ApprovalView | None = None
    shopify_refund_id: str | None = None
    cost_micros: int = 0


class ReconciliationResult(Frozen):
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


class DriftRows(Frozen):
    rows: tuple[DriftRow, ...] = ()
