"""InvariantMonitor branches with stand-in activities: findings become incidents and one
ops email; a quiet run and a re-detection send none; an email that fails does not undo
the incidents; a failed incident write fails the run; too many findings are truncated."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from kernel.codes import ErrorCode
from tests.workflows.fast.conftest import Fast
from tests.workflows.fast.fakes import refusal
from workflows.common.models import FlowStatus
from workflows.ids import INVARIANT_MONITOR, monitor_workflow_id
from workflows.monitor.invariant_monitor import InvariantMonitor
from workflows.monitor.models import (
    MONITOR_FLOWS,
    MONITOR_LEDGER,
    MONITOR_RECORD,
    MONITOR_RUNS,
    MONITOR_TENANCY,
    FactsRequest,
    FindingBatch,
    FlowFacts,
    IncidentRow,
    IncidentRows,
    LedgerFacts,
    MonitorInput,
    MonitorResult,
    OrderFlow,
    PendingApproval,
    RunFacts,
    TenancyFacts,
)

EMAIL = "sendgrid.send_email@1"
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


@dataclass
class Monitors:
    """The monitor's reads and incident table, in memory."""

    flows: FlowFacts = field(default_factory=FlowFacts)
    incidents: dict[tuple[str, str], IncidentRow] = field(default_factory=dict)
    records: int = 0
    fail_record: ApplicationError | None = None

    @activity.defn(name=MONITOR_LEDGER)
    async def read_ledger(self, _: FactsRequest) -> LedgerFacts:
        return LedgerFacts()

    @activity.defn(name=MONITOR_RUNS)
    async def read_runs(self, _: FactsRequest) -> RunFacts:
        return RunFacts()

    @activity.defn(name=MONITOR_TENANCY)
    async def read_tenancy(self, _: FactsRequest) -> TenancyFacts:
        return TenancyFacts()

    @activity.defn(name=MONITOR_FLOWS)
    async def read_flows(self, _: FactsRequest) -> FlowFacts:
        return self.flows

    @activity.defn(name=MONITOR_RECORD)
    async def record(self, batch: FindingBatch) -> IncidentRows:
        self.records += 1
        if self.fail_record is not None:
            raise self.fail_record
        rows, new = [], []
        for f in batch.findings:
            key = (f.kind, f.entity_ref)
            known = self.incidents.get(key)
            if known is None:
                known = IncidentRow(
                    incident_id=len(self.incidents) + 1,
                    kind=f.kind,
                    check_name=f.check,
                    entity_ref=f.entity_ref,
                    status="open",
                    summary=f.summary,
                    diagnosis=f.diagnosis.model_dump(mode="json"),
                    first_seen=LONG_AGO,
                    last_seen=LONG_AGO,
                    first_run_id=batch.run_id,
                    last_run_id=batch.run_id,
                )
                new.append(known.incident_id)
            else:
                known = known.model_copy(
                    update={"occurrences": known.occurrences + 1, "last_run_id": batch.run_id}
                )
            self.incidents[key] = known
            rows.append(known)
        return IncidentRows(rows=tuple(rows), new_ids=tuple(new))


@dataclass
class Bench:
    fast: Fast
    monitors: Monitors
    task_queue: str

    async def run(self, **options: Any) -> MonitorResult:
        handle = await self.start(**options)
        return await handle.result()

    async def start(self, **options: Any) -> WorkflowHandle[Any, MonitorResult]:
        return await self.fast.client.start_workflow(
            INVARIANT_MONITOR.type,
            MonitorInput(tenant_id=self.fast.tenant, **options),
            id=monitor_workflow_id(self.fast.tenant, uuid.uuid4().hex[:8]),
            task_queue=self.task_queue,
            result_type=MonitorResult,
        )

    def emails(self) -> int:
        return self.fast.fakes.names().count(EMAIL)


@pytest.fixture
async def bench(fast: Fast) -> AsyncIterator[Bench]:
    monitors = Monitors()
    task_queue = f"fast-monitor-{uuid.uuid4()}"
    stand_ins: list[Callable[..., Any]] = [
        monitors.read_ledger,
        monitors.read_runs,
        monitors.read_tenancy,
        monitors.read_flows,
        monitors.record,
    ]
    worker = Worker(
        fast.client,
        task_queue=task_queue,
        workflows=[InvariantMonitor],
        activities=[*fast.fakes.activities(), *stand_ins],
    )
    async with worker:
        yield Bench(fast, monitors, task_queue)


def _broken(monitors: Monitors, *orders: str, overdue: bool = False) -> None:
    """Orders idle for years in ``paid``; with ``overdue`` an approval long expired."""
    pending = (
        PendingApproval(
            request_id="req-1",
            workflow_id="refund:x:1",
            action="refund",
            required_role="finance",
            requested_at=LONG_AGO,
            expires_at=LONG_AGO + timedelta(hours=1),
        ),
    )
    monitors.flows = FlowFacts(
        pending=pending if overdue else (),
        orders=tuple(OrderFlow(order_id=o, state="paid", updated_at=LONG_AGO) for o in orders),
    )


async def test_findings_become_incidents_and_one_email(bench: Bench) -> None:
    _broken(bench.monitors, "1001", overdue=True)
    result = await bench.run()
    assert result.by_kind == {"INV-03": 1, "INV-07": 1}
    assert result.new_incidents == 2 and len(result.incidents) == 2
    assert bench.emails() == 1
    (email,) = bench.fast.fakes.inputs(EMAIL)
    assert email.template == "ops_alert" and "INV-03 x1" in email.variables["kinds"]

    again = await bench.run()  # the same violations: known, counted, quiet
    assert again.new_incidents == 0 and {i.occurrences for i in again.incidents} == {2}
    assert bench.emails() == 1


async def test_a_quiet_run_writes_and_sends_nothing(bench: Bench) -> None:
    result = await bench.run()
    assert (result.findings, result.incidents, bench.monitors.records, bench.emails()) == (
        0,
        (),
        0,
        0,
    )
    assert set(result.checked) == {"ledger", "runs", "tenancy", "flows"}


async def test_an_email_that_fails_keeps_the_incidents(bench: Bench) -> None:
    bench.fast.fakes.fail[EMAIL] = refusal(ErrorCode.PROVIDER_INVALID_REQUEST)
    _broken(bench.monitors, "1001")
    result = await bench.run()
    assert result.new_incidents == 1 and len(bench.monitors.incidents) == 1


async def test_a_failed_incident_write_fails_the_run(bench: Bench) -> None:
    bench.monitors.fail_record = refusal(ErrorCode.DATABASE_ERROR, "disk full")
    _broken(bench.monitors, "1001")
    handle = await bench.start()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    status = await handle.query("status", result_type=FlowStatus)
    assert status.state == "failed" and "disk full" in (status.error or "")
    assert bench.emails() == 0


async def test_too_many_findings_are_truncated(bench: Bench) -> None:
    _broken(bench.monitors, "1", "2", "3")
    result = await bench.run(max_findings=2)
    assert result.truncated and result.findings == 2 and len(bench.monitors.incidents) == 2
