"""The soak: rounds of the business day until enough events went through, then judged.

Rounds (:mod:`autobiz.soak.rounds`) run ``parallel`` at a time until at least ``events``
events have been driven and, with ``duration``, at least that long has passed. An event
is something from outside that AutoBiz had to take in: a provider webhook or an inbound
email the ingress stored (``event_store``, counted by the database, not by the soak), an
operator's CLI command (approvals, closeout), a refund or cancellation request. The day's
closeout runs once after the last round. With ``chaos`` the actions of
:mod:`autobiz.soak.chaos` run one after another while the rounds do.

Then the stack settles (every stored event handed over, no webhook still being retried)
and the checks run
(:mod:`autobiz.soak.checks`); latency per flow is Temporal's: each case's workflow from
its start to its close.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from autobiz.db.database import Database
from autobiz.demo.business_day import Case, Timing
from autobiz.demo.closeout_cases import closeout_case
from autobiz.devstack.stack import Stack
from autobiz.settings import Settings
from autobiz.soak.chaos import ChaosLog, rotation
from autobiz.soak.checks import Findings, check, settle
from autobiz.soak.rounds import SoakDay, play_round

Progress = Callable[[str], None]
# The sandbox retries a webhook this often (0.5 s doubling: about 17 minutes in all),
# as the providers retry for hours: an ingress or database outage loses nothing.
WEBHOOK_ATTEMPTS = 12
WEBHOOK_RETRY_SECONDS = 0.5


@dataclass(frozen=True)
class SoakOptions:
    events: int = 300
    duration: float | None = None  # seconds
    chaos: bool = False
    parallel: int = 1
    chaos_every: float = 15.0  # seconds between two chaos actions
    settle_seconds: float = 120.0


@dataclass
class SoakReport:
    ok: bool
    events: int
    events_by_source: dict[str, int]
    rounds: int
    seconds: float
    outcomes: dict[str, dict[str, Any]]
    lost: int
    duplicated: int
    invariant_violations: int
    latency_seconds: dict[str, dict[str, float | int]]
    findings: dict[str, list[dict[str, Any]]]
    checked: dict[str, int]
    chaos: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (``q`` in 0..100) of ``values`` (non-empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class Soak:
    def __init__(
        self,
        settings: Settings,
        stack: Stack,
        client: Client,
        db: Database,
        options: SoakOptions,
        say: Progress,
    ) -> None:
        self.settings = settings
        self.stack = stack
        self.client = client
        self.db = db
        self.options = options
        self.say = say
        self.timing = Timing(workflow_appears=120, state_reached=240, result=360)
        self.cases: list[Case] = []
        self.commands = 0
        self.requests = 0
        self.rounds = 0
        self.chaos_log = ChaosLog()

    def _day(self) -> SoakDay:
        return SoakDay(self.settings, self.client, self.db, self.say, timing=self.timing)

    async def run(self) -> SoakReport:
        began = time.monotonic()
        since = datetime.now(UTC)
        host = self.settings.ingress
        lead = self._day()
        try:
            await lead._start()
            await lead._approver_keys()
            await lead.control.webhooks(
                target_url=f"http://{host.host}:{host.port}/webhooks",
                max_attempts=WEBHOOK_ATTEMPTS,
                retry_seconds=WEBHOOK_RETRY_SECONDS,
            )
            chaos = asyncio.create_task(self._chaos(lead)) if self.options.chaos else None
            try:
                await self._rounds(since, began)
            finally:
                if chaos is not None:
                    chaos.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await chaos
                    await lead.control.clear_faults()
            await closeout_case(lead)
            self.commands += lead.commands
            self.cases.extend(lead.cases)
            await settle(
                lead.control,
                self.db,
                self._tenants(),
                since,
                webhook_attempts=WEBHOOK_ATTEMPTS,
                within=self.options.settle_seconds,
            )
            await self._unsettled(lead)
            findings = await check(
                self.cases,
                control=lead.control,
                clients=lead.clients,
                db=self.db,
                tenants=self._tenants(),
                since=since,
                webhook_attempts=WEBHOOK_ATTEMPTS,
            )
            by_source = await self._stored(since)
            latency = await self.latencies()
        finally:
            await lead.aclose()
        return self._report(findings, by_source, latency, time.monotonic() - began)

    # -- driving --------------------------------------------------------------------

    def _tenants(self) -> list[str]:
        return sorted({c.tenant for c in self.cases} | {"demo-shop"})

    async def _stored(self, since: datetime) -> dict[str, int]:
        """Events the ingress stored since the soak began, by source (the database's count),
        plus the operator's commands and requests."""
        counts: Counter[str] = Counter()
        for tenant in self._tenants():
            async with self.db.tenant(tenant) as session:
                rows = await session.fetch_all(
                    "SELECT source, count(*) AS n FROM event_store "
                    "WHERE tenant_id = %s AND received_at >= %s GROUP BY source",
                    (tenant, since),
                )
            for row in rows:
                counts[f"webhook:{row['source']}"] += int(row["n"])
        counts["cli:commands"] = self.commands
        counts["cli:requests"] = self.requests
        return dict(counts)

    async def _events(self, since: datetime) -> int:
        try:
            return sum((await self._stored(since)).values())
        except Exception:  # the database may be away (chaos): count again later
            return 0

    def _more(self, events: int, began: float) -> bool:
        if events < self.options.events:
            return True
        return self.options.duration is not None and (
            time.monotonic() - began < self.options.duration
        )

    async def _rounds(self, since: datetime, began: float) -> None:
        """One round first (to learn how many events a round drives), then as many as the
        target still needs, ``parallel`` at a time, until it is met."""
        per_round: float | None = None
        while self._more(await self._events(since), began):
            events = await self._events(since)
            if per_round is None:
                batch = 1
            else:
                needed = max(1, math.ceil((self.options.events - events) / per_round))
                batch = min(needed, self.options.parallel)
            await asyncio.gather(*(self._round() for _ in range(batch)))
            after = await self._events(since)
            if after <= events:  # nothing got in: the report shows how far it came
                self.say(f"no events counted after {batch} more round(s): stopping")
                return
            if per_round is None:
                per_round = float(after)

    async def _round(self) -> None:
        self.rounds += 1
        number = self.rounds
        day = self._day()
        try:
            await day._start()
            self.say(f"round {number}: started")
            cases = await play_round(day, number)
            self.commands += day.commands
            self.requests += sum(1 for c in cases if c.facts.get("operator_request"))
            self.cases.extend(cases)
            ok = sum(1 for c in cases if c.ok)
            self.say(f"round {number}: {ok}/{len(cases)} as expected")
        finally:
            await day.aclose()

    async def _chaos(self, lead: SoakDay) -> None:
        actions = rotation(self.stack, lead.control, self.chaos_log)
        index = 0
        while True:
            await asyncio.sleep(self.options.chaos_every)
            action = actions[index % len(actions)]
            index += 1
            try:
                event = await action()
            except Exception as exc:  # reported; the checks judge what it did
                self.chaos_log.add("failed", time.monotonic(), None, f"{type(exc).__name__}: {exc}")
                self.say(f"chaos: an action failed: {exc}")
                continue
            self.say(f"chaos: {event.action} ({event.seconds:g}s) {event.detail}".rstrip())

    async def _unsettled(self, lead: SoakDay) -> None:
        """Cases whose driver stopped waiting (it failed a step of its own, e.g. an
        approval the CLI sent too late): their flows' outcomes as Temporal has them, once
        they closed (a flow still running after ``settle_seconds`` stays unfinished: lost)."""
        deadline = time.monotonic() + self.options.settle_seconds
        for case in self.cases:
            if case.actual is not None or case.workflow_id is None:
                continue
            handle = self.client.get_workflow_handle(case.workflow_id)
            while time.monotonic() < deadline:
                try:
                    if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                        await lead._settle(case)
                        break
                except RPCError:
                    break  # never started: nothing to settle
                await asyncio.sleep(1.0)

    # -- judging --------------------------------------------------------------------

    def _outcomes(self) -> dict[str, dict[str, Any]]:
        flows: dict[str, dict[str, Any]] = {}
        for case in self.cases:
            flow = flows.setdefault(
                case.workflow_type, {"expected": Counter(), "observed": Counter(), "mismatches": []}
            )
            flow["expected"][case.expected] += 1
            flow["observed"][case.actual or "unfinished"] += 1
            if not case.ok:
                flow["mismatches"].append(
                    {
                        "case": case.name,
                        "workflow_id": case.workflow_id,
                        "expected": case.expected,
                        "actual": case.actual,
                        "problems": case.problems,
                    }
                )
        return {
            name: {**flow, "expected": dict(flow["expected"]), "observed": dict(flow["observed"])}
            for name, flow in sorted(flows.items())
        }

    async def latencies(self) -> dict[str, dict[str, float | int]]:
        """Per flow, Temporal's start-to-close time of each case's workflow."""
        seconds: dict[str, list[float]] = {}
        for case in self.cases:
            if case.workflow_id is None or case.workflow_type == "ingress":
                continue
            try:
                desc = await self.client.get_workflow_handle(case.workflow_id).describe()
            except RPCError:
                continue
            if desc.close_time is None or desc.start_time is None:
                continue
            took = (desc.close_time - desc.start_time).total_seconds()
            seconds.setdefault(case.workflow_type, []).append(took)
        return {
            flow: {
                "n": len(values),
                "p50": round(percentile(values, 50), 2),
                "p99": round(percentile(values, 99), 2),
            }
            for flow, values in sorted(seconds.items())
        }

    def _report(
        self,
        findings: Findings,
        by_source: dict[str, int],
        latency: dict[str, dict[str, float | int]],
        elapsed: float,
    ) -> SoakReport:
        outcomes = self._outcomes()
        mismatched = any(flow["mismatches"] for flow in outcomes.values())
        bad = findings.lost or findings.duplicated or findings.invariant_violations
        events = sum(by_source.values())
        return SoakReport(
            ok=not bad and not mismatched and events >= self.options.events,
            events=events,
            events_by_source=by_source,
            rounds=self.rounds,
            seconds=round(elapsed, 1),
            outcomes=outcomes,
            lost=len(findings.lost),
            duplicated=len(findings.duplicated),
            invariant_violations=len(findings.invariant_violations),
            latency_seconds=latency,
            findings={
                "lost": findings.lost,
                "duplicated": findings.duplicated,
                "invariant_violations": findings.invariant_violations,
            },
            checked=findings.checked,
            chaos=[asdict(e) for e in self.chaos_log.events],
        )
