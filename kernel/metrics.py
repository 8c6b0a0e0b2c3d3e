"""Kernel metrics, recorded through the Temporal SDK's metric meters.

They land on the worker's Prometheus endpoint (``settings.worker.metrics_bind``) next to
the SDK's own runtime metrics. The SDK does not prefix custom metrics: the names below
are what Prometheus sees (counters have no ``_total`` suffix unless the endpoint is
configured with ``counters_total_suffix``).

- In workflow code the meter is ``workflow.metric_meter()``. It is replay-safe: nothing is
  recorded while a workflow replays history, so a worker restart or a cache eviction
  does not count a decision twice. Recording emits no command, so determinism is
  untouched. The SDK already labels each series with ``namespace``, ``task_queue`` and
  ``workflow_type``.
- In activity code the meter is ``activity.metric_meter()``. The SDK labels it with
  ``namespace``, ``task_queue`` and ``activity_type``, and we add ``workflow_type``.

Labels stay bounded and carry no PII: tenant ids, tool refs from the registry (an
unknown tool is labelled ``unknown``), approval actions named in code, and fixed outcome
names. Outside a workflow or an activity, every function here does nothing, so the gate
and the ledger can still be used directly, for example in unit tests.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import activity, workflow
from temporalio.common import MetricMeter

from kernel.codes import ErrorCode
from kernel.errors import TerminationReason

if TYPE_CHECKING:
    from kernel.contracts import CallContext
    from kernel.gate import GateDecision
    from kernel.state import RunState

# Workflow side (kernel_call, the approval desk).
GATE_DECISIONS = "autobiz_gate_decisions"
TOOL_CALLS = "autobiz_tool_calls"
TOOL_CALL_LATENCY = "autobiz_tool_call_latency"
RUN_TERMINATIONS = "autobiz_run_terminations"
APPROVAL_REQUESTS = "autobiz_approval_requests"
APPROVAL_OUTCOMES = "autobiz_approval_outcomes"
APPROVAL_WAIT = "autobiz_approval_wait"
APPROVAL_NOTICES = "autobiz_approval_notices"
APPROVAL_SIGNALS_DROPPED = "autobiz_approval_signals_dropped"
# The InvariantMonitor: incidents it opened, by invariant (re-detections not counted).
INVARIANT_VIOLATIONS = "autobiz_invariant_violations_total"
# Activity side (the side-effect runner).
RECEIPTS = "autobiz_receipts"
IDEMPOTENCY = "autobiz_idempotency"

# Histogram buckets (milliseconds: the worker's endpoint reports durations in ms).
HISTOGRAM_BUCKETS: dict[str, list[float]] = {
    TOOL_CALL_LATENCY: [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000],
    APPROVAL_WAIT: [1000, 10_000, 60_000, 300_000, 900_000, 3_600_000, 14_400_000, 86_400_000],
}

_DENIED = {
    ErrorCode.TOOL_UNKNOWN: "denied_registry",
    ErrorCode.SCHEMA_INVALID: "denied_schema",
    ErrorCode.PERMISSION_DENIED: "denied_permission",
    ErrorCode.APPROVAL_INVALID: "denied_approval",
    ErrorCode.APPROVAL_REQUIRED: "needs_approval",
}


def gate_outcome(decision: GateDecision) -> str:
    """``allowed``, ``needs_approval`` or ``denied_<check>``. The checks are registry,
    schema, permission, bounds, loop, approval, and terminated (the run had already
    ended)."""
    if decision.allowed:
        return "allowed"
    if decision.code is ErrorCode.RUN_TERMINATED:
        if decision.termination is None:
            return "denied_terminated"
        if decision.termination.reason is TerminationReason.LOOP_DETECTED:
            return "denied_loop"
        return "denied_bounds"
    assert decision.code is not None
    return _DENIED[decision.code]


def _workflow_meter() -> MetricMeter | None:
    return workflow.metric_meter() if workflow.in_workflow() else None


def _tool_label(decision: GateDecision) -> str:
    # A tool the registry does not know is labelled ``unknown``: a typo in a workflow
    # cannot create a new series. (A refusal after the run ended names the requested
    # tool: the gate stops before the registry lookup.)
    if decision.contract is not None:
        return decision.contract.ref
    if decision.code is ErrorCode.TOOL_UNKNOWN:
        return "unknown"
    return decision.request.ref


def record_gate(state: RunState, decision: GateDecision) -> None:
    """Count one gate decision. A termination is also counted by the bound that ended the run."""
    meter = _workflow_meter()
    if meter is None:
        return
    tool = _tool_label(decision)
    meter.create_counter(
        GATE_DECISIONS, "Gate decisions by tool and outcome (allowed, needs_approval, denied_*)."
    ).add(1, {"tenant": state.tenant_id, "tool": tool, "outcome": gate_outcome(decision)})
    if decision.termination is not None:
        meter.create_counter(
            RUN_TERMINATIONS, "Runs the gate terminated, by the bound that ended them."
        ).add(
            1,
            {"tenant": state.tenant_id, "tool": tool, "reason": decision.termination.reason.value},
        )


def record_tool_call(state: RunState, tool: str, outcome: str, elapsed: timedelta) -> None:
    """Count a finished tool call (``succeeded`` or ``failed``, after Temporal's retries).

    The latency is measured on the workflow clock, from scheduling to the result
    reaching the workflow, so it includes queueing and every retry.
    """
    meter = _workflow_meter()
    if meter is None:
        return
    labels = {"tenant": state.tenant_id, "tool": tool, "outcome": outcome}
    meter.create_counter(TOOL_CALLS, "Tool calls the gate let through, by outcome.").add(1, labels)
    meter.create_histogram_timedelta(
        TOOL_CALL_LATENCY, "Tool call latency seen by the workflow (ms).", "duration"
    ).record(max(elapsed, timedelta(0)), labels)


def record_approval_requested(tenant_id: str, action: str) -> None:
    meter = _workflow_meter()
    if meter is None:
        return
    meter.create_counter(APPROVAL_REQUESTS, "Approval requests opened, by action.").add(
        1, {"tenant": tenant_id, "action": action}
    )


def record_approval_outcome(tenant_id: str, action: str, outcome: str, waited: timedelta) -> None:
    """``outcome`` is ``approved``, ``denied`` or ``expired``."""
    meter = _workflow_meter()
    if meter is None:
        return
    labels = {"tenant": tenant_id, "action": action, "outcome": outcome}
    meter.create_counter(
        APPROVAL_OUTCOMES, "Approval requests closed, by outcome (approved, denied, expired)."
    ).add(1, labels)
    meter.create_histogram_timedelta(
        APPROVAL_WAIT, "Time from an approval request to its outcome (ms).", "duration"
    ).record(max(waited, timedelta(0)), labels)


def record_approval_notice(tenant_id: str, action: str, kind: str) -> None:
    """``kind`` is ``reminder`` or ``escalation``."""
    meter = _workflow_meter()
    if meter is None:
        return
    meter.create_counter(APPROVAL_NOTICES, "Approval reminders and escalations sent.").add(
        1, {"tenant": tenant_id, "action": action, "kind": kind}
    )


def record_approval_signal_dropped(tenant_id: str) -> None:
    meter = _workflow_meter()
    if meter is None:
        return
    meter.create_counter(
        APPROVAL_SIGNALS_DROPPED, "Approval decisions sent as signals and dropped as invalid."
    ).add(1, {"tenant": tenant_id})


def record_invariant_violations(tenant_id: str, kind: str, count: int) -> None:
    """``count`` new incidents of invariant ``kind`` (``INV-05``…) for the tenant."""
    meter = _workflow_meter()
    if meter is None or count <= 0:
        return
    meter.create_counter(
        INVARIANT_VIOLATIONS, "Invariant violations the monitor opened an incident for."
    ).add(count, {"tenant": tenant_id, "kind": kind})


# -- activity side ---------------------------------------------------------------------


def _activity_meter() -> MetricMeter | None:
    if not activity.in_activity():
        return None
    try:
        meter = activity.metric_meter()
    except RuntimeError:  # a non-threaded sync activity has no meter
        return None
    workflow_type = activity.info().workflow_type
    return meter.with_additional_attributes({"workflow_type": workflow_type or ""})


def record_receipt(ctx: CallContext, outcome: str) -> None:
    """A receipt write: ``written`` or ``failed`` (the attempt then fails and retries)."""
    meter = _activity_meter()
    if meter is None:
        return
    meter.create_counter(RECEIPTS, "Receipt writes by tool, side effect and outcome.").add(
        1,
        {
            "tenant": ctx.tenant_id,
            "tool": ctx.ref,
            "side_effect": ctx.side_effect.value,
            "outcome": outcome,
        },
    )


def record_idempotency(ctx: CallContext, outcome: str) -> None:
    """``executed`` (first call, or again after the window), ``replayed`` (a duplicate
    answered from the store), ``in_progress`` (a duplicate refused while the first
    attempt runs) or ``failed`` (the provider call raised)."""
    meter = _activity_meter()
    if meter is None:
        return
    meter.create_counter(IDEMPOTENCY, "Side-effect calls by idempotency outcome.").add(
        1, {"tenant": ctx.tenant_id, "tool": ctx.ref, "outcome": outcome}
    )
