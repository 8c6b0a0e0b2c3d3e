"""Per-run kernel state kept inside the workflow: counters, call history, the trace.

Serialisable (pydantic), so it can be queried, persisted and carried over
continue-as-new. Every trace detail is allowlisted and redacted on the way in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from kernel.contracts import ProjectionWrite
from kernel.cost import micros_to_usd
from kernel.errors import TerminationReason
from kernel.frozen import Frozen
from kernel.policy import RunPolicy
from kernel.redaction import redact_detail, redact_text

TraceKind = Literal[
    "run_started",
    "gate_denied",
    "run_terminated",
    "tool_started",
    "tool_succeeded",
    "tool_failed",
    "approval",
    "state_change",
    "decision",
]


class TraceEntry(Frozen):
    seq: int
    at: datetime
    kind: TraceKind
    outcome: str
    tool: str | None = None
    step: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    cost_micros: int = 0


class Termination(Frozen):
    reason: TerminationReason
    limit: str
    observed: str
    at: datetime
    tool: str | None = None


class Approval(Frozen):
    """A human decision the workflow obtained (via its update) before a HITL call."""

    approved: bool
    approver: str
    role: str
    request_id: str
    decided_at: datetime
    # When set, the approval is only valid for the call with this internal key.
    internal_key: str | None = None


class RunSummary(BaseModel):
    """What the ``kernel_trace`` query returns."""

    workflow_id: str
    tenant_id: str
    workflow_type: str
    principal: str
    steps: int
    tool_calls: int
    tokens: int
    cost_micros: int
    cost_usd: str
    termination_reason: str | None
    denials: dict[str, int]
    entries: list[TraceEntry]


class RunState(BaseModel):
    """The kernel's state for one workflow run."""

    policy: RunPolicy
    workflow_id: str
    principal: str
    started_at: datetime
    steps: int = 0
    tool_calls: int = 0
    tokens: int = 0
    cost_micros: int = 0
    fingerprints: list[str] = Field(default_factory=list)
    denials: dict[str, int] = Field(default_factory=dict)
    termination: Termination | None = None
    trace: list[TraceEntry] = Field(default_factory=list)
    persisted_seq: int = 0
    # A projection row waiting for the next activity to carry it (``carry``).
    riding: ProjectionWrite | None = None

    @classmethod
    def start(
        cls, *, policy: RunPolicy, workflow_id: str, principal: str, now: datetime
    ) -> RunState:
        state = cls(policy=policy, workflow_id=workflow_id, principal=principal, started_at=now)
        state.record(
            now,
            "run_started",
            "ok",
            detail={
                "tenant": policy.tenant_id,
                "principal": principal,
                "state": policy.workflow_type,
            },
        )
        return state

    @property
    def tenant_id(self) -> str:
        return self.policy.tenant_id

    @property
    def terminated(self) -> bool:
        return self.termination is not None

    def record(
        self,
        now: datetime,
        kind: TraceKind,
        outcome: str,
        *,
        tool: str | None = None,
        step: str | None = None,
        detail: dict[str, Any] | None = None,
        cost_micros: int = 0,
    ) -> TraceEntry:
        entry = TraceEntry(
            seq=len(self.trace) + 1,
            at=now,
            kind=kind,
            outcome=redact_text(outcome),
            tool=tool,
            step=None if step is None else redact_text(step),
            detail=redact_detail(detail or {}),
            cost_micros=cost_micros,
        )
        self.trace.append(entry)
        return entry

    def state_change(self, now: datetime, from_state: str, to_state: str) -> TraceEntry:
        """Record a business state change (counts as a step)."""
        self.steps += 1
        return self.record(
            now, "state_change", to_state, detail={"from_state": from_state, "to_state": to_state}
        )

    def decision(self, now: datetime, what: str, detail: dict[str, Any]) -> TraceEntry:
        """Record a decision the workflow made (with its alternatives, if any)."""
        return self.record(now, "decision", what, detail=detail)

    def carry(self, write: ProjectionWrite) -> None:
        """Hand ``write`` to the next tool call or trace persist (the caller has taken
        back any write still waiting: ``OrderProjection.ride``)."""
        self.riding = write

    def take_riding(self) -> ProjectionWrite | None:
        """The waiting projection write, now taken by the activity about to be scheduled."""
        write, self.riding = self.riding, None
        return write

    def unpersisted(self) -> list[TraceEntry]:
        return [e for e in self.trace if e.seq > self.persisted_seq]

    def summary(self) -> RunSummary:
        return RunSummary(
            workflow_id=self.workflow_id,
            tenant_id=self.tenant_id,
            workflow_type=self.policy.workflow_type,
            principal=self.principal,
            steps=self.steps,
            tool_calls=self.tool_calls,
            tokens=self.tokens,
            cost_micros=self.cost_micros,
            cost_usd=micros_to_usd(self.cost_micros),
            termination_reason=None if self.termination is None else self.termination.reason,
            denials=dict(self.denials),
            entries=list(self.trace),
        )
