"""The monitor context's models: what InvariantMonitor reads (facts per check group), what
it finds (findings with their diagnosis) and the incident rows it writes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kernel.config import STUCK_AFTER_BY_STATE, TERMINAL_STATES
from kernel.frozen import Frozen
from workflows.common.models import FlowContext

# Plumbing: one read per check group, and the incident rows (our own database only).
MONITOR_LEDGER = "autobiz.monitor_ledger"
MONITOR_RUNS = "autobiz.monitor_runs"
MONITOR_TENANCY = "autobiz.monitor_tenancy"
MONITOR_FLOWS = "autobiz.monitor_flows"
MONITOR_RECORD = "autobiz.monitor_record"

InvariantKind = Literal[
    "INV-01", "INV-02", "INV-03", "INV-04", "INV-05", "INV-06", "INV-07", "INV-08"
]
IncidentStatus = Literal["open", "acknowledged", "resolved"]


class MonitorInput(BaseModel):
    """Started by the tenant's schedule, ``temporal workflow start`` or a test (then
    ``context`` is loaded by the worker). The thresholds are the BusinessConfig's
    ``monitor`` section as the starter read it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant_id: str
    context: FlowContext | None = None
    principal: str = "system:invariant_monitor"
    stuck_after: timedelta = timedelta(hours=48)
    stuck_after_by_state: dict[str, timedelta] = Field(
        default_factory=lambda: dict(STUCK_AFTER_BY_STATE)
    )
    terminal_states: tuple[str, ...] = TERMINAL_STATES
    approval_grace: timedelta = timedelta(minutes=15)
    max_findings: int = Field(default=500, ge=1, le=5000)


class FactsRequest(Frozen):
    """One check group's read, as of ``as_of`` (the run's ``workflow.now()``)."""

    tenant_id: str
    as_of: datetime
    terminal_states: tuple[str, ...] = ()
    # Rows younger than this are left for the next run (a run projects its last state a
    # moment before its trace is persisted; an order is not stuck before its SLA).
    older_than: timedelta = timedelta(minutes=10)
    limit: int = 500


# -- facts ------------------------------------------------------------------------------


class SideEffectKey(Frozen):
    """A succeeded idempotency record of a tool that must leave a receipt, and the
    receipt found under its internal key (none: ``receipt_id`` None)."""

    internal_key: str
    tool_ref: str
    external_key: str
    first_seen_at: datetime
    receipt_id: int | None = None
    receipt_external_key: str | None = None


class FinancialReceipt(Frozen):
    """A FINANCIAL receipt, whether the tenant's HITL rule required an approval for it
    (evaluated on what the receipt records), and the approvals its run holds."""

    receipt_id: int
    workflow_id: str
    tool_ref: str
    amount_minor: int
    currency: str
    created_at: datetime
    approval_required: bool
    requirement: str  # why (the rule, or "contract default: always")
    approvals: dict[str, str] = Field(default_factory=dict)  # request id -> status


class UngrantedReceipt(Frozen):
    """A receipt of a tool its flow's policy (the tenant's config) does not grant."""

    receipt_id: int
    workflow_id: str
    tool_ref: str
    workflow_type: str  # the policy's (config key) the run was under


class LedgerFacts(Frozen):
    side_effects: tuple[SideEffectKey, ...] = ()
    financial: tuple[FinancialReceipt, ...] = ()
    ungranted: tuple[UngrantedReceipt, ...] = ()


class RunFact(Frozen):
    """A finished run (its order projection is terminal) and its persisted trace."""

    workflow_id: str
    order_id: str
    state: str
    updated_at: datetime
    trace_rows: int = 0
    cost_micros: int = 0
    receipts: int = 0
    # Providers its trace shows a successful call to whose calls the tenant prices > 0.
    priced_calls: tuple[str, ...] = ()
    tool_calls: int = 0  # tool_started entries in its trace
    # Its flow's bounds in the tenant's config (None: unknown flow or no config).
    max_tool_calls: int | None = None
    max_cost_micros: int | None = None


class RunFacts(Frozen):
    runs: tuple[RunFact, ...] = ()


class Reference(Frozen):
    """A row of this tenant that names a workflow whose id carries another tenant."""

    table: str
    row_ref: str
    workflow_id: str


class TenancyFacts(Frozen):
    references: tuple[Reference, ...] = ()


class PendingApproval(Frozen):
    request_id: str
    workflow_id: str
    action: str
    required_role: str
    requested_at: datetime
    expires_at: datetime


class OrderFlow(Frozen):
    order_id: str
    state: str
    updated_at: datetime
    workflow_id: str | None = None


class FlowFacts(Frozen):
    pending: tuple[PendingApproval, ...] = ()
    orders: tuple[OrderFlow, ...] = ()


# -- findings and incidents ---------------------------------------------------------------


class Alternative(Frozen):
    """An explanation the check considered, and why the evidence rules it out."""

    explanation: str
    rejected_because: str


class Diagnosis(Frozen):
    cause: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    alternatives: tuple[Alternative, ...] = ()
    recommended_action: str


class Finding(Frozen):
    """One violation, as a run found it: the incident's key is ``(kind, entity_ref)``."""

    kind: InvariantKind
    check: str
    entity_ref: str
    summary: str
    diagnosis: Diagnosis


class FindingBatch(Frozen):
    tenant_id: str
    run_id: str  # the monitor's workflow id
    findings: tuple[Finding, ...]


class IncidentRow(Frozen):
    """An ``incidents`` row."""

    incident_id: int
    kind: str
    check_name: str
    entity_ref: str
    status: IncidentStatus
    summary: str
    diagnosis: dict[str, Any] = Field(default_factory=dict)
    first_seen: datetime
    last_seen: datetime
    occurrences: int = 1
    first_run_id: str
    last_run_id: str
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None


class IncidentRows(Frozen):
    rows: tuple[IncidentRow, ...] = ()
    new_ids: tuple[int, ...] = ()  # the rows this batch opened (not re-detections)


class MonitorResult(Frozen):
    workflow_id: str
    tenant_id: str
    checked: dict[str, int] = Field(default_factory=dict)  # check group -> facts read
    findings: int = 0
    truncated: bool = False
    incidents: tuple[IncidentRow, ...] = ()  # as the table stands after this run
    new_incidents: int = 0
    by_kind: dict[str, int] = Field(default_factory=dict)
    cost_micros: int = 0
