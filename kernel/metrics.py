"""Worker metrics: the catalogue of every ``autobiz_*`` series on the worker's endpoint,
recorded through the Temporal SDK's metric meters.

They land on the worker's Prometheus endpoint (``settings.worker.metrics_bind``) next to
the SDK's own runtime metrics. That endpoint is configured (``workers.worker.metrics_runtime``)
to follow the Prometheus conventions: counters end in ``_total``, durations are in seconds
and end in ``_seconds``. The SDK appends those suffixes itself, so a metric is created under
its :attr:`MetricSpec.sdk_name` and Prometheus sees :attr:`MetricSpec.name`;
``docs/metrics.md`` lists every name here (a hygiene test keeps the two in step).

- In workflow code the meter is ``workflow.metric_meter()``. It is replay-safe: nothing is
  recorded while a workflow replays history, so a worker restart or a cache eviction
  does not count a decision twice. Recording emits no command, so determinism is
  untouched. The SDK already labels each series with ``namespace``, ``task_queue`` and
  ``workflow_type``.
- In activity code the meter is ``activity.metric_meter()``. The SDK labels it with
  ``namespace``, ``task_queue`` and ``activity_type``, and we add ``workflow_type``.
- The gauges read from the database are set by ``workers.ledger_gauges`` on the
  runtime's meter, and ``autobiz_build_info`` once at worker start.

Labels stay bounded and carry no PII: tenant ids, tool refs from the registry (an
unknown tool is labelled ``unknown``), approval actions named in code, and fixed outcome
names. Outside a workflow or an activity, every function here does nothing, so the gate
and the ledger can still be used directly, for example in unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from temporalio import activity, workflow
from temporalio.common import MetricCounter, MetricHistogramTimedelta, MetricMeter

from kernel.codes import ErrorCode
from kernel.errors import TerminationReason

if TYPE_CHECKING:
    from kernel.contracts import CallContext
    from kernel.gate import GateDecision
    from kernel.state import RunState

Kind = Literal["counter", "histogram", "gauge"]


@dataclass(frozen=True)
class MetricSpec:
    """One worker metric: ``name`` is what Prometheus sees, ``labels`` are ours (the SDK
    adds ``namespace``, ``task_queue``, ``workflow_type``/``activity_type`` and
    ``service_name``)."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str

    @property
    def sdk_name(self) -> str:
        """The name to create the instrument under: the endpoint appends ``_total`` to a
        counter and ``_seconds`` to a duration histogram."""
        if self.kind == "counter":
            return self.name.removesuffix("_total")
        if self.kind == "histogram":
            return self.name.removesuffix("_seconds")
        return self.name


def _spec(name: str, kind: Kind, labels: str, help: str) -> MetricSpec:
    return MetricSpec(name, kind, tuple(labels.split()), help)


# Workflow side (kernel_call, the approval desk, the InvariantMonitor).
GATE_DECISIONS = _spec(
    "autobiz_gate_decisions_total",
    "counter",
    "tenant tool outcome",
    "Gate decisions by tool and outcome (allowed, needs_approval, denied_<check>).",
)
RUN_TERMINATIONS = _spec(
    "autobiz_run_terminations_total",
    "counter",
    "tenant tool reason",
    "Runs the gate terminated, by the bound that ended them.",
)
TOOL_CALLS = _spec(
    "autobiz_tool_calls_total",
    "counter",
    "tenant tool outcome",
    "Tool calls the gate let through, by outcome (succeeded, failed).",
)
TOOL_CALL_DURATION = _spec(
    "autobiz_tool_call_duration_seconds",
    "histogram",
    "tenant tool outcome",
    "Tool call latency seen by the workflow, retries included.",
)
COST = _spec(
    "autobiz_cost_microdollars_total",
    "counter",
    "tenant tool",
    "Cost charged to runs (API price and LLM tokens), in millionths of a US dollar.",
)
APPROVAL_REQUESTS = _spec(
    "autobiz_approval_requests_total",
    "counter",
    "tenant action",
    "Approval requests opened, by action.",
)
APPROVAL_OUTCOMES = _spec(
    "autobiz_approval_outcomes_total",
    "counter",
    "tenant action outcome",
    "Approval requests closed, by outcome (approved, denied, expired).",
)
APPROVAL_WAIT = _spec(
    "autobiz_approval_wait_seconds",
    "histogram",
    "tenant action outcome",
    "Time from an approval request to its outcome.",
)
APPROVAL_NOTICES = _spec(
    "autobiz_approval_notices_total",
    "counter",
    "tenant action kind",
    "Approval reminders and escalations sent.",
)
APPROVAL_SIGNALS_DROPPED = _spec(
    "autobiz_approval_signals_dropped_total",
    "counter",
    "tenant",
    "Approval decisions sent as signals and dropped as invalid.",
)
INVARIANT_VIOLATIONS = _spec(
    "autobiz_invariant_violations_total",
    "counter",
    "tenant kind",
    "Invariant violations the monitor opened an incident for (re-detections not counted).",
)
# Activity side (the side-effect runner, the reconciliation's ledger).
RECEIPTS = _spec(
    "autobiz_receipts_total",
    "counter",
    "tenant tool side_effect outcome",
    "Receipt writes by tool, side effect and outcome (written, failed).",
)
IDEMPOTENCY = _spec(
    "autobiz_idempotency_outcomes_total",
    "counter",
    "tenant tool outcome",
    "Side-effect calls by idempotency outcome (executed, replayed, in_progress, failed).",
)
DRIFT_DETECTED = _spec(
    "autobiz_reconciliation_drift_detected_total",
    "counter",
    "tenant kind",
    "Drift rows the reconciliation recorded for the first time.",
)
DRIFT_RESOLVED = _spec(
    "autobiz_reconciliation_drift_resolved_total",
    "counter",
    "tenant kind status",
    "Drift rows a resolution moved (repaired, dismissed, pending_approval).",
)
SECURITY_INCIDENTS = _spec(
    "autobiz_security_incidents_total",
    "counter",
    "tenant code",
    "Refused attempts on another tenant's or another order's objects, by error code.",
)
# Read from the database by workers.ledger_gauges (every worker reports the same value).
APPROVAL_BACKLOG = _spec(
    "autobiz_approval_backlog",
    "gauge",
    "tenant action",
    "Approval requests pending now.",
)
APPROVAL_BACKLOG_OLDEST = _spec(
    "autobiz_approval_backlog_oldest_age_seconds",
    "gauge",
    "tenant action",
    "Age of the oldest pending approval request (0 when none is pending).",
)
INVARIANT_VIOLATIONS_OPEN = _spec(
    "autobiz_invariant_violations_open",
    "gauge",
    "tenant kind status",
    "Incidents not resolved yet, by invariant and status (open, acknowledged).",
)
DRIFT_OPEN = _spec(
    "autobiz_reconciliation_drift_open",
    "gauge",
    "tenant kind status",
    "Drift rows still to act on, by kind and status (open, pending_approval).",
)
GAUGES_REFRESHED = _spec(
    "autobiz_metrics_refresh_timestamp_seconds",
    "gauge",
    "",
    "Unix time of the last successful refresh of the database gauges.",
)
BUILD_INFO = _spec(
    "autobiz_build_info",
    "gauge",
    "version",
    "1, labelled with the AutoBiz version this worker runs (deploys and rollbacks).",
)
# Circuit breakers: recorded by autobiz.breakers.metrics (its names, listed here too).
BREAKER_STATE = _spec(
    "autobiz_breaker_state",
    "gauge",
    "provider tenant",
    "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
)
BREAKER_TRANSITIONS = _spec(
    "autobiz_breaker_transitions_total",
    "counter",
    "provider tenant from to",
    "Circuit breaker state changes, by the state left and entered.",
)
BREAKER_REJECTIONS = _spec(
    "autobiz_breaker_rejections_total",
    "counter",
    "provider tenant state",
    "Provider calls an open (or probing) breaker failed fast.",
)
BREAKER_METRICS = (BREAKER_STATE, BREAKER_TRANSITIONS, BREAKER_REJECTIONS)
# The shared rate limiter (autobiz.ratelimits), in the tool activity that sends.
RATE_LIMIT_WAIT = _spec(
    "autobiz_rate_limit_wait_seconds",
    "histogram",
    "provider tenant",
    "Time a provider request waited for its account's rate-limit budget (0: none).",
)
RATE_LIMITED = _spec(
    "autobiz_rate_limited_total",
    "counter",
    "provider tenant",
    "Provider requests failed fast (RATE_LIMIT_WAIT) because the budget was further away "
    "than the longest wait; retried after it.",
)

WORKER_METRICS: tuple[MetricSpec, ...] = (
    GATE_DECISIONS,
    RUN_TERMINATIONS,
    TOOL_CALLS,
    TOOL_CALL_DURATION,
    COST,
    APPROVAL_REQUESTS,
    APPROVAL_OUTCOMES,
    APPROVAL_WAIT,
    APPROVAL_NOTICES,
    APPROVAL_SIGNALS_DROPPED,
    INVARIANT_VIOLATIONS,
    RECEIPTS,
    IDEMPOTENCY,
    DRIFT_DETECTED,
    DRIFT_RESOLVED,
    SECURITY_INCIDENTS,
    APPROVAL_BACKLOG,
    APPROVAL_BACKLOG_OLDEST,
    INVARIANT_VIOLATIONS_OPEN,
    DRIFT_OPEN,
    GAUGES_REFRESHED,
    BUILD_INFO,
    *BREAKER_METRICS,
    RATE_LIMIT_WAIT,
    RATE_LIMITED,
)

# Histogram buckets in seconds, keyed by the SDK name (what the endpoint's overrides match).
HISTOGRAM_BUCKETS: dict[str, list[float]] = {
    TOOL_CALL_DURATION.sdk_name: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    APPROVAL_WAIT.sdk_name: [1, 10, 60, 300, 900, 3600, 14_400, 86_400],
    RATE_LIMIT_WAIT.sdk_name: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
}


def counter(meter: MetricMeter, spec: MetricSpec) -> MetricCounter:
    assert spec.kind == "counter", spec.name
    return meter.create_counter(spec.sdk_name, spec.help)


def duration(meter: MetricMeter, spec: MetricSpec) -> MetricHistogramTimedelta:
    assert spec.kind == "histogram", spec.name
    return meter.create_histogram_timedelta(spec.sdk_name, spec.help, "duration")


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
    counter(meter, GATE_DECISIONS).add(
        1, {"tenant": state.tenant_id, "tool": tool, "outcome": gate_outcome(decision)}
    )
    if decision.termination is not None:
        counter(meter, RUN_TERMINATIONS).add(
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
    counter(meter, TOOL_CALLS).add(1, labels)
    duration(meter, TOOL_CALL_DURATION).record(max(elapsed, timedelta(0)), labels)


def record_cost(state: RunState, tool: str, micros: int) -> None:
    """Charge ``micros`` (µ$) of a succeeded call to the run's workflow type."""
    meter = _workflow_meter()
    if meter is None or micros <= 0:
        return
    counter(meter, COST).add(micros, {"tenant": state.tenant_id, "tool": tool})


def record_approval_requested(tenant_id: str, action: str) -> None:
    meter = _workflow_meter()
    if meter is None:
        return
    counter(meter, APPROVAL_REQUESTS).add(1, {"tenant": tenant_id, "action": action})


def record_approval_outcome(tenant_id: str, action: str, outcome: str, waited: timedelta) -> None:
    """``outcome`` is ``approved``, ``denied`` or ``expired``."""
    meter = _workflow_meter()
    if meter is None:
        return
    labels = {"tenant": tenant_id, "action": action, "outcome": outcome}
    counter(meter, APPROVAL_OUTCOMES).add(1, labels)
    duration(meter, APPROVAL_WAIT).record(max(waited, timedelta(0)), labels)


def record_approval_notice(tenant_id: str, action: str, kind: str) -> None:
    """``kind`` is ``reminder`` or ``escalation``."""
    meter = _workflow_meter()
    if meter is None:
        return
    counter(meter, APPROVAL_NOTICES).add(1, {"tenant": tenant_id, "action": action, "kind": kind})


def record_approval_signal_dropped(tenant_id: str) -> None:
    meter = _workflow_meter()
    if meter is None:
        return
    counter(meter, APPROVAL_SIGNALS_DROPPED).add(1, {"tenant": tenant_id})


def record_invariant_violations(tenant_id: str, kind: str, count: int) -> None:
    """``count`` new incidents of invariant ``kind`` (``INV-05``…) for the tenant."""
    meter = _workflow_meter()
    if meter is None or count <= 0:
        return
    counter(meter, INVARIANT_VIOLATIONS).add(count, {"tenant": tenant_id, "kind": kind})


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


def record_rate_limit_wait(provider: str, tenant: str, seconds: float) -> None:
    """A provider request got its budget after ``seconds``."""
    meter = _activity_meter()
    if meter is None:
        return
    duration(meter, RATE_LIMIT_WAIT).record(
        timedelta(seconds=seconds), {"provider": provider, "tenant": tenant}
    )


def record_rate_limited(provider: str, tenant: str) -> None:
    """A provider request refused by the rate limiter (retried after the wait)."""
    meter = _activity_meter()
    if meter is None:
        return
    counter(meter, RATE_LIMITED).add(1, {"provider": provider, "tenant": tenant})


def record_receipt(ctx: CallContext, outcome: str) -> None:
    """A receipt write: ``written`` or ``failed`` (the attempt then fails and retries)."""
    meter = _activity_meter()
    if meter is None:
        return
    counter(meter, RECEIPTS).add(
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
    counter(meter, IDEMPOTENCY).add(
        1, {"tenant": ctx.tenant_id, "tool": ctx.ref, "outcome": outcome}
    )


def record_drift_detected(tenant_id: str, kind: str, count: int = 1) -> None:
    """``count`` drift rows of ``kind`` inserted (not re-sightings of a known row)."""
    meter = _activity_meter()
    if meter is None or count <= 0:
        return
    counter(meter, DRIFT_DETECTED).add(count, {"tenant": tenant_id, "kind": kind})


def record_drift_resolved(tenant_id: str, kind: str, status: str) -> None:
    """A drift row moved to ``status`` (``repaired``, ``dismissed``, ``pending_approval``)."""
    meter = _activity_meter()
    if meter is None:
        return
    counter(meter, DRIFT_RESOLVED).add(1, {"tenant": tenant_id, "kind": kind, "status": status})


def record_security_incident(tenant_id: str, code: str) -> None:
    """A refused attempt on another tenant's or order's object (``autobiz.ledger.incidents``)."""
    meter = _activity_meter()
    if meter is None:
        return
    counter(meter, SECURITY_INCIDENTS).add(1, {"tenant": tenant_id, "code": code})


def publish_build_info(meter: MetricMeter, version: str) -> None:
    """``autobiz_build_info{version} 1`` on the worker's runtime meter, once at start."""
    meter.create_gauge(BUILD_INFO.sdk_name, BUILD_INFO.help).set(1, {"version": version})
