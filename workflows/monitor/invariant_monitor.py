"""InvariantMonitor (DESIGN §2, §8): INV-01..08 checked against the live data of one
tenant; every violation an incident (open → acknowledged → resolved, deduplicated), a
metric, and one summary email to ops per run that opened new incidents.

**Runs.** Workflow type ``InvariantMonitor``, id ``monitor:{tenant}:{run key}``, started
by the tenant's Temporal Schedule ``monitor-schedule:{tenant}`` (``starters.monitor``;
interval and thresholds from the BusinessConfig ``monitor`` section, overlap SKIP) or by
hand (``temporal workflow start --type InvariantMonitor``). The policy is the tenant's
``invariant_monitor`` workflow config, loaded by the worker.

**Checks** (one read activity per group, the checks pure in ``checks``):

* ``ledger``: every executed side effect has exactly one receipt under its keys (INV-05),
  by a tool its flow is granted (INV-02); no FINANCIAL receipt without the approval its
  HITL rule required (INV-07);
* ``runs``: every finished run has a trace, and a cost when it called a priced API (INV-04),
  within its flow's bounds (INV-03);
* ``tenancy``: no row of this tenant names another tenant's workflow (INV-06);
* ``flows``: no approval pending past its expiry (INV-07); no order projection idle in a
  non-terminal state past its SLA (INV-03).

**Incidents.** One live row per ``(kind, entity_ref)`` (migration 0008): the next run
finding it again bumps ``last_seen``/``occurrences``; a resolved incident found again
opens a new one. ``autobiz_invariant_violations_total{tenant,kind}`` counts the new ones.

**Ends** ``completed``; ``failed`` when a read or the incident write fails after
Temporal's retries; ``cancelled`` when cancelled from the Temporal side.

Deterministic: I/O only through ``internal_activity`` and ``kernel_call`` (the email).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from autobiz.search_attributes import APPROVAL_PENDING, FLOW_STATE, TENANT_ID
    from kernel.call import internal_activity
    from kernel.metrics import record_invariant_violations
    from workflows.common.flow import email_ops
    from workflows.common.lifecycle import Flow
    from workflows.common.models import FlowContext
    from workflows.ids import INVARIANT_MONITOR
    from workflows.monitor.checks import (
        approval_findings,
        bound_findings,
        flow_findings,
        permission_findings,
        run_findings,
        side_effect_findings,
        tenancy_findings,
    )
    from workflows.monitor.models import (
        MONITOR_FLOWS,
        MONITOR_LEDGER,
        MONITOR_RECORD,
        MONITOR_RUNS,
        MONITOR_TENANCY,
        FactsRequest,
        Finding,
        FindingBatch,
        FlowFacts,
        IncidentRow,
        IncidentRows,
        LedgerFacts,
        MonitorInput,
        MonitorResult,
        RunFacts,
        TenancyFacts,
    )

DB_TIMEOUT = timedelta(seconds=30)
# A run projects its last state a moment before its trace is persisted: a finished run
# younger than this is left for the next run.
TRACE_SETTLE = timedelta(minutes=10)

FactsT = TypeVar("FactsT", bound=BaseModel)


@dataclass
class Watch:
    """What the run has read and found: the result and the ``status`` query's detail."""

    as_of: datetime
    checked: dict[str, int] = field(default_factory=dict)  # group -> facts read
    findings: list[Finding] = field(default_factory=list)
    truncated: bool = False
    incidents: tuple[IncidentRow, ...] = ()
    new_ids: tuple[int, ...] = ()
    recorded: bool = False

    def shown(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"as_of": self.as_of.isoformat(), "checked": dict(self.checked)}
        if self.recorded:
            shown.update(incidents=len(self.incidents), new=len(self.new_ids))
        return shown

    def new_by_kind(self) -> dict[str, int]:
        new = set(self.new_ids)
        return dict(Counter(r.kind for r in self.incidents if r.incident_id in new))


@workflow.defn(name=INVARIANT_MONITOR.type)
class InvariantMonitor(Flow):
    def __init__(self) -> None:
        super().__init__()
        self._facts: Watch | None = None

    # -- the process ------------------------------------------------------------------

    @workflow.run
    async def run(self, input: MonitorInput) -> MonitorResult:
        _mark_started(input.tenant_id, self._state)
        context = await self._begin(INVARIANT_MONITOR, input)
        self._facts = Watch(as_of=workflow.now())
        try:
            await self._monitor(input, context)
        except asyncio.CancelledError:
            await self._end_cancelled()
            raise
        except (ActivityError, ApplicationError) as exc:
            await self._failed(exc)
            raise
        await self._end("completed")
        return self._result(input)

    async def _monitor(self, input: MonitorInput, context: FlowContext) -> None:
        await self._move("checking")
        findings = await self._check(input)
        watch = self._watch
        watch.truncated = len(findings) > input.max_findings
        watch.findings = findings[: input.max_findings]
        self._kernel.decision(
            workflow.now(),
            "violations_found",
            {"count": len(findings), "kinds": sorted({f.kind for f in findings})},
        )
        await self._move("recording")
        recorded = await self._record(input.tenant_id, watch.findings)
        watch.incidents, watch.new_ids, watch.recorded = recorded.rows, recorded.new_ids, True
        for kind, count in sorted(watch.new_by_kind().items()):
            record_invariant_violations(input.tenant_id, kind, count)
        await self._notify_ops(context)

    async def _check(self, input: MonitorInput) -> list[Finding]:
        """Each group's facts read, then checked; findings in group order."""
        as_of = self._watch.as_of
        terminal = input.terminal_states
        slas = [input.stuck_after, *input.stuck_after_by_state.values()]
        ledger = await self._read("ledger", MONITOR_LEDGER, LedgerFacts, input, TRACE_SETTLE)
        runs = await self._read("runs", MONITOR_RUNS, RunFacts, input, TRACE_SETTLE, terminal)
        tenancy = await self._read("tenancy", MONITOR_TENANCY, TenancyFacts, input)
        flows = await self._read("flows", MONITOR_FLOWS, FlowFacts, input, min(slas), terminal)
        return [
            *side_effect_findings(ledger),
            *permission_findings(ledger),
            *approval_findings(ledger),
            *run_findings(runs),
            *bound_findings(runs),
            *tenancy_findings(input.tenant_id, tenancy),
            *flow_findings(flows, input, as_of),
        ]

    async def _read(
        self,
        group: str,
        activity: str,
        result_type: type[FactsT],
        input: MonitorInput,
        older_than: timedelta = TRACE_SETTLE,
        terminal_states: tuple[str, ...] = (),
    ) -> FactsT:
        facts = await internal_activity(
            activity,
            FactsRequest(
                tenant_id=input.tenant_id,
                as_of=self._watch.as_of,
                terminal_states=terminal_states,
                older_than=older_than,
                limit=input.max_findings,
            ),
            result_type=result_type,
            limit=DB_TIMEOUT,
        )
        assert facts is not None
        self._watch.checked[group] = _size(facts)
        return facts

    async def _record(self, tenant_id: str, findings: list[Finding]) -> IncidentRows:
        if not findings:
            return IncidentRows()
        recorded = await internal_activity(
            MONITOR_RECORD,
            FindingBatch(
                tenant_id=tenant_id,
                run_id=workflow.info().workflow_id,
                findings=tuple(findings),
            ),
            result_type=IncidentRows,
            limit=DB_TIMEOUT,
        )
        assert recorded is not None
        return recorded

    async def _notify_ops(self, context: FlowContext) -> None:
        """One summary email per run that opened incidents (re-detections stay quiet)."""
        new = self._watch.new_by_kind()
        if not new or not context.ops_email:
            return
        total = sum(new.values())
        failed = await email_ops(
            self._kernel,
            to=context.ops_email,
            template="ops_alert",
            subject=f"Invariant monitor: {total} new incident(s)",
            step="notify_ops",
            variables={
                "run": workflow.info().workflow_id,
                "new": str(total),
                "kinds": ", ".join(f"{k} x{n}" for k, n in sorted(new.items())),
                "command": "autobiz incidents list",
            },
        )
        if failed is not None:
            # The incidents are the record; an email that cannot be sent must not undo them.
            self._kernel.decision(workflow.now(), "ops_notice_failed", {"error": failed})

    # -- how the flow ends otherwise --------------------------------------------------

    async def _failed(self, exc: ActivityError | ApplicationError) -> None:
        if isinstance(exc, ActivityError) and isinstance(exc.cause, CancelledError):
            return await self._end_cancelled()
        self._error = str(exc.cause if isinstance(exc, ActivityError) else exc)
        await self._end("failed")

    # -- platform hooks ---------------------------------------------------------------

    @property
    def _watch(self) -> Watch:
        assert self._facts is not None, "run() has not started its watch"
        return self._facts

    def _status_detail(self) -> dict[str, Any]:
        return self._facts.shown() if self._facts is not None else {}

    def _result(self, input: MonitorInput) -> MonitorResult:
        w = self._watch
        return MonitorResult(
            workflow_id=workflow.info().workflow_id,
            tenant_id=input.tenant_id,
            checked=dict(w.checked),
            findings=len(w.findings),
            truncated=w.truncated,
            incidents=w.incidents,
            new_incidents=len(w.new_ids),
            by_kind=dict(Counter(f.kind for f in w.findings)),
            cost_micros=self._kernel.cost_micros,
        )


def _mark_started(tenant_id: str, state: str) -> None:
    """The run's first search attributes (it has no order)."""
    workflow.upsert_search_attributes(
        [
            TENANT_ID.value_set(tenant_id),
            FLOW_STATE.value_set(state),
            APPROVAL_PENDING.value_set(False),
        ]
    )


def _size(facts: BaseModel) -> int:
    """How many facts a group's read returned (the sum of its tuples' lengths)."""
    return sum(len(value) for value in vars(facts).values() if isinstance(value, tuple))
