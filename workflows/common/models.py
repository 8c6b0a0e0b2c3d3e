"""Models every flow shares: its context (policy, approvers, timing), approvals and their
rows, the order projection, and the ``status`` query's answer.

Pure pydantic (no I/O, no Temporal): workflow modules import it, so does everything
that starts, signals or serves a workflow. Durations are ``timedelta`` so tests and the
demo can run an approval or a shipment wait in seconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from kernel.config import DunningConfig

# The order_state rows, defined in the kernel so the worker's ride writes the same model.
from kernel.contracts import OrderStateWrite as OrderStateWrite
from kernel.contracts import OrderStateWritten as OrderStateWritten
from kernel.decision_proof import DEFAULT_MAX_AGE, DEFAULT_MAX_SKEW, DecisionProof
from kernel.frozen import Frozen
from kernel.policy import RunPolicy

ApprovalStatus = Literal["pending", "approved", "denied", "expired"]

# Activities that are plumbing, not provider tools (they touch only our own database).
LOAD_FLOW_CONTEXT = "autobiz.load_flow_context"
HITL_OPEN = "autobiz.hitl_open"
HITL_NOTE = "autobiz.hitl_note"
HITL_CLOSE = "autobiz.hitl_close"
ORDER_STATE_WRITE = "autobiz.order_state_write"


class ApproverInfo(Frozen):
    id: str
    roles: tuple[str, ...]
    email: str | None = None


class ApprovalTiming(Frozen):
    """How long a request waits, when to remind, when to escalate. ``timeout`` None:
    the HITL rule's timeout from the tenant's config. ``proof_max_age`` / ``proof_max_skew``:
    how old a decision's proof may be, and how far ahead of the workflow's clock."""

    timeout: timedelta | None = None
    remind_before: timedelta = timedelta(hours=1)
    escalate_after: timedelta = timedelta(hours=4)
    proof_max_age: timedelta = DEFAULT_MAX_AGE
    proof_max_skew: timedelta = DEFAULT_MAX_SKEW


class FlowContext(Frozen):
    """The slice of a tenant's BusinessConfig one run needs (no file reads in workflows)."""

    policy: RunPolicy
    approvers: tuple[ApproverInfo, ...] = ()
    ops_email: str | None = None
    customer_emails: bool = True
    timing: ApprovalTiming = ApprovalTiming()
    dunning: DunningConfig = DunningConfig()


class FlowContextRequest(Frozen):
    tenant_id: str
    workflow_type: str


# --- approvals ------------------------------------------------------------------------


# An option's name (what an approver types after --choice), and the longest draft.
CHOICE_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
DRAFT_MAX_CHARS = 20_000


class Decision(Frozen):
    """What an approver sends (the ``decide`` update, or the ``decide_signal`` signal).

    ``proof`` is required by the validator (``kernel.decision_proof``); the default None
    only keeps decisions recorded before proofs existed readable, so old histories replay.
    A signed decision names its ``request_id``. ``choice`` picks one of the request's
    ``options`` (required when it has any); ``edited_text`` replaces its ``draft`` (only
    a request with a draft takes one). Both are inside the signed statement."""

    tenant_id: str
    approver: str
    approve: bool
    request_id: str | None = None  # None: the request pending now (unsigned only)
    reason: str | None = Field(default=None, max_length=500)
    proof: DecisionProof | None = None
    choice: str | None = Field(default=None, pattern=CHOICE_PATTERN)
    edited_text: str | None = Field(default=None, min_length=1, max_length=DRAFT_MAX_CHARS)


class DecisionResult(Frozen):
    request_id: str
    status: ApprovalStatus
    decided_by: str | None
    decided_at: datetime | None


class ApprovalView(Frozen):
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
    # A request that asks for a pick among options, or carries a draft to approve as is
    # or edited (a WISMO reply, an escalation's ways out); the decision's pick and edit.
    options: tuple[str, ...] = ()
    draft: str | None = None
    choice: str | None = None
    edited_text: str | None = None

    @property
    def final_text(self) -> str | None:
        """The draft as approved: the approver's edit when there is one."""
        return self.edited_text if self.edited_text is not None else self.draft


class HitlOpen(Frozen):
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


class HitlNote(Frozen):
    """A reminder or an escalation, recorded on the request row."""

    tenant_id: str
    request_id: str
    kind: Literal["reminder", "escalation"]
    escalation_level: int
    at: datetime
    notified: tuple[str, ...] = ()


class HitlClose(Frozen):
    tenant_id: str
    request_id: str
    status: Literal["approved", "denied", "expired"]
    decided_by: str | None = None
    decided_at: datetime
    reason: str | None = None


# --- status ---------------------------------------------------------------------------


class FlowStatus(Frozen):
    workflow_id: str
    tenant_id: str
    state: str
    approval: ApprovalView | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    cost_micros: int = 0
    error: str | None = None


# Reads the order's projection row, so a second writer continues from its version.
ORDER_STATE_READ = "autobiz.order_state_read"


class OrderStateKey(Frozen):
    tenant_id: str
    order_id: str


class OrderStateRow(Frozen):
    version: int
    state: str
    data: dict[str, Any] = Field(default_factory=dict)
