"""Kernel metrics on the worker's Prometheus endpoint, scraped over real HTTP.

Each test gives the worker a Runtime of its own, bound to a free port (the one
``workers.worker.metrics_runtime`` builds from ``settings.worker.metrics_bind``), and a
client connected with that runtime. It runs real workflows and then reads ``/metrics``.
Series are picked by the test's own task queue and tenant, so they cannot pick up
another test's counts.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from autobiz.db.database import Database
from autobiz.settings import Settings, WorkerSettings
from autobiz.temporal_client import connect
from kernel import metrics
from kernel.codes import ErrorCode
from kernel.errors import TerminationReason
from kernel.gate import GATE_CODES, GateDecision, ToolRequest
from kernel.state import Termination
from starters.flows import decide
from tests.support.approver_keys import Approvers, approvers  # noqa: F401
from tests.support.sandbox import Sandbox, sandbox, sandbox_server  # noqa: F401
from tests.support.stack import free_port
from tests.workflows.support import Harness, eventually, running_harness
from tests.workflows_kernel.gate_workflow import Call, GateTestInput, GateTestWorkflow
from tests.workflows_kernel.test_gate_in_workflow import policy
from tests.workflows_kernel.toolbox import TestTools
from workers.worker import WORKFLOWS, metrics_runtime
from workflows.orders.models import ShipmentNotice

pytestmark = pytest.mark.integration

ORDER_TOOLS = (
    "shopify.get_order@1",
    "risk.assess@1",
    "stripe.capture_payment@1",
    "printful.create_order@1",
    "printful.confirm_order@1",
    "shopify.create_fulfillment@1",
    "sendgrid.send_email@1",
)
SIDE_EFFECTS = {
    "stripe.capture_payment@1": "FINANCIAL",
    "printful.create_order@1": "WRITE",
    "printful.confirm_order@1": "WRITE",
    "shopify.create_fulfillment@1": "WRITE",
    "sendgrid.send_email@1": "COMMUNICATION",
}
Sample = tuple[str, dict[str, str], float]


@dataclass
class MetricsClient:
    client: Client
    runtime: Runtime
    url: str

    async def scrape(self) -> list[Sample]:
        async with httpx.AsyncClient() as http:
            resp = await http.get(self.url)
        assert resp.status_code == 200
        return parse_exposition(resp.text)

    async def value_when(self, name: str, expected: float, **labels: str) -> list[Sample]:
        """Scrape until ``name{labels}`` reaches ``expected`` (a deadline: the endpoint
        is read while the runtime may still be exporting), then return the last scrape."""
        last: list[Sample] = []

        async def probe() -> list[Sample] | None:
            nonlocal last
            last = await self.scrape()
            return last if total(last, name, **labels) == expected else None

        try:
            await eventually(probe, within=15, what=f"{name}{labels} == {expected}")
        except AssertionError:
            present = sorted({n for n, _, _ in last if n.startswith(("autobiz_", name))})
            raise AssertionError(
                f"{name}{labels} = {total(last, name, **labels)}, expected {expected}; "
                f"series present: {present}"
            ) from None
        return last


_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> list[Sample]:
    """Samples exactly as the endpoint names them (no client-side renaming)."""
    samples = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None or line.startswith("#"):
            continue
        name, labels, value = match.groups()
        samples.append((name, dict(_LABEL.findall(labels or "")), float(value)))
    return samples


def total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels``."""
    return sum(
        value
        for n, have, value in samples
        if n == name and all(have.get(k) == v for k, v in labels.items())
    )


def series(samples: list[Sample], name: str, **labels: str) -> dict[tuple[str, ...], float]:
    """``{(tool, outcome): value}``-style view of the series matching ``labels``."""
    found: dict[tuple[str, ...], float] = {}
    for n, have, value in samples:
        if n == name and all(have.get(k) == v for k, v in labels.items()):
            key = (have.get("tool", ""), have.get("outcome", ""))
            found[key] = found.get(key, 0.0) + value
    return found


@pytest.fixture
async def metrics_client(temporal_env: WorkflowEnvironment) -> AsyncIterator[MetricsClient]:
    bind = f"127.0.0.1:{free_port()}"
    runtime = metrics_runtime(Settings(worker=WorkerSettings(metrics_bind=bind)))
    assert runtime is not None
    client = await connect(
        Settings(),
        target_host=temporal_env.client.service_client.config.target_host,
        runtime=runtime,
    )
    yield MetricsClient(client, runtime, f"http://{bind}/metrics")


@pytest.fixture
async def metrics_harness(
    metrics_client: MetricsClient,
    sandbox: Sandbox,  # noqa: F811
    database: Database,
    tenant: str,
    task_queue: str,
) -> AsyncIterator[Harness]:
    """The workflow harness, with its worker on the metrics runtime."""
    async with running_harness(
        metrics_client.client, sandbox, database, tenant, task_queue
    ) as harness:
        yield harness


async def test_order_fulfill_counts_every_tool_call_once(
    metrics_client: MetricsClient, metrics_harness: Harness
) -> None:
    m, h = metrics_client, metrics_harness
    order_id, pi = await h.authorized_order("25.00")
    handle = await h.start_order(order_id, pi)
    await handle.signal("printful_shipment", ShipmentNotice(carrier="USPS", tracking_number="T1"))
    assert (await handle.result()).state == "completed"

    mine = {"tenant": h.tenant, "task_queue": h.task_queue}
    samples = await m.value_when("autobiz_tool_calls_total", len(ORDER_TOOLS), **mine)
    wf = {**mine, "workflow_type": "OrderFulfill"}
    # One allowed gate decision and one successful call per tool, nothing refused.
    assert series(samples, "autobiz_gate_decisions_total", **wf) == {
        (tool, "allowed"): 1.0 for tool in ORDER_TOOLS
    }
    assert series(samples, "autobiz_tool_calls_total", **wf) == {
        (tool, "succeeded"): 1.0 for tool in ORDER_TOOLS
    }
    assert total(samples, "autobiz_tool_calls_total", tool="shopify.get_order@1", **wf) == 1
    for tool in ORDER_TOOLS:
        assert total(samples, "autobiz_tool_call_duration_seconds_count", tool=tool, **wf) == 1
    buckets = {s["le"] for n, s, _ in samples if n == "autobiz_tool_call_duration_seconds_bucket"}
    assert {"0.005", "0.025", "60", "+Inf"} <= buckets  # the worker's overrides (seconds)
    assert total(samples, "autobiz_run_terminations_total", **mine) == 0
    assert total(samples, "autobiz_approval_requests_total", **mine) == 0
    # Activity side: one receipt and one first execution per side effect.
    for tool, side_effect in SIDE_EFFECTS.items():
        labels = {**wf, "tool": tool}
        assert (
            total(
                samples,
                "autobiz_receipts_total",
                side_effect=side_effect,
                outcome="written",
                **labels,
            )
            == 1
        ), tool
        assert (
            total(samples, "autobiz_idempotency_outcomes_total", outcome="executed", **labels) == 1
        ), tool
    assert total(samples, "autobiz_idempotency_outcomes_total", outcome="replayed", **mine) == 0
    assert total(samples, "autobiz_receipts_total", outcome="failed", **mine) == 0
    assert total(samples, "autobiz_receipts_total", **mine) == len(SIDE_EFFECTS)
    # The SDK's own metrics are on the same endpoint.
    sdk = {"task_queue": h.task_queue, "workflow_type": "OrderFulfill"}
    assert total(samples, "temporal_workflow_completed_total", **sdk) == 1

    # Replaying the run records nothing (the workflow meter is replay-safe).
    before = [s for s in samples if s[0].startswith("autobiz_") and s[1].get("tenant") == h.tenant]
    history = await handle.fetch_history()
    replayer = Replayer(
        workflows=list(WORKFLOWS), data_converter=h.client.data_converter, runtime=m.runtime
    )
    await replayer.replay_workflow(history)
    after = await m.scrape()
    assert [
        s for s in after if s[0].startswith("autobiz_") and s[1].get("tenant") == h.tenant
    ] == before


async def test_approval_metrics(
    metrics_client: MetricsClient,
    metrics_harness: Harness,
    approvers: Approvers,  # noqa: F811
) -> None:
    m, h = metrics_client, metrics_harness
    order_id, pi = await h.authorized_order("600.00")
    handle = await h.start_order(order_id, pi)
    await h.status_when(handle.id, lambda s: s.approval is not None)
    mine = {"tenant": h.tenant, "task_queue": h.task_queue}
    await m.value_when("autobiz_approval_requests_total", 1, action="capture_payment", **mine)
    capture = {**mine, "tool": "stripe.capture_payment@1"}
    samples = await m.value_when(
        "autobiz_gate_decisions_total", 1, outcome="needs_approval", **capture
    )
    assert total(samples, "autobiz_gate_decisions_total", outcome="allowed", **capture) == 0
    assert total(samples, "autobiz_approval_outcomes_total", **mine) == 0  # still pending

    decided = await decide(
        h.client, handle.id, await approvers.decision(h.client, handle.id, "omar", True)
    )
    assert decided.status == "approved"
    await handle.signal("printful_shipment", ShipmentNotice(carrier="USPS", tracking_number="T2"))
    assert (await handle.result()).state == "completed"

    samples = await m.value_when(
        "autobiz_approval_outcomes_total", 1, outcome="approved", action="capture_payment", **mine
    )
    assert total(samples, "autobiz_approval_outcomes_total", **mine) == 1
    assert total(samples, "autobiz_approval_wait_seconds_count", outcome="approved", **mine) == 1
    assert total(samples, "autobiz_approval_requests_total", **mine) == 1
    assert total(samples, "autobiz_gate_decisions_total", outcome="needs_approval", **capture) == 1
    assert total(samples, "autobiz_gate_decisions_total", outcome="allowed", **capture) == 1
    assert total(samples, "autobiz_receipts_total", side_effect="FINANCIAL", **mine) == 1


async def test_gate_refusals_are_counted_by_check(
    metrics_client: MetricsClient, task_queue: str
) -> None:
    m = metrics_client
    tenant = f"m-{uuid.uuid4().hex[:8]}"
    calls = [
        Call(tool="test.nope", input={}, step="a"),  # registry
        Call(tool="test.read", input={"key": 5}, step="b"),  # schema
        Call(tool="test.secret", input={"key": "a"}, step="c"),  # permission
        Call(tool="test.fail", input={"key": "a"}, step="d"),  # allowed, the tool fails
        *[Call(tool="test.read", input={"key": "x"}, step=f"r{i}") for i in range(3)],  # loop
        Call(tool="test.read", input={"key": "y"}, step="z"),  # after the termination
    ]
    tools = TestTools()
    async with Worker(
        m.client, task_queue=task_queue, workflows=[GateTestWorkflow], activities=tools.all()
    ):
        result = await m.client.execute_workflow(
            GateTestWorkflow.run,
            GateTestInput(policy=policy(tenant), calls=calls),
            id=f"metrics-gate-{uuid.uuid4()}",
            task_queue=task_queue,
        )
    assert result.outcomes == [
        "TOOL_UNKNOWN",
        "SCHEMA_INVALID",
        "PERMISSION_DENIED",
        "ACTIVITY_FAILED",
        "ok",
        "ok",
        "RUN_TERMINATED",
        "RUN_TERMINATED",
    ]
    mine = {"tenant": tenant, "task_queue": task_queue, "workflow_type": "GateTestWorkflow"}
    samples = await m.value_when("autobiz_gate_decisions_total", len(calls), **mine)
    assert series(samples, "autobiz_gate_decisions_total", **mine) == {
        ("unknown", "denied_registry"): 1.0,
        ("test.read@1", "denied_schema"): 1.0,
        ("test.secret@1", "denied_permission"): 1.0,
        ("test.fail@1", "allowed"): 1.0,
        ("test.read@1", "allowed"): 2.0,
        ("test.read@1", "denied_loop"): 1.0,
        ("test.read@1", "denied_terminated"): 1.0,
    }
    assert series(samples, "autobiz_tool_calls_total", **mine) == {
        ("test.fail@1", "failed"): 1.0,
        ("test.read@1", "succeeded"): 2.0,
    }
    assert total(samples, "autobiz_run_terminations_total", reason="loop_detected", **mine) == 1
    assert total(samples, "autobiz_run_terminations_total", **mine) == 1


@pytest.mark.unit
def test_every_gate_code_has_an_outcome_label() -> None:
    """A new refusal code must get a label, or ``record_gate`` would raise in a workflow."""
    request = ToolRequest(tool="t", version="1", input={}, step="s")
    at = datetime.now(UTC)
    labels = {
        code: metrics.gate_outcome(GateDecision(request=request, allowed=False, code=code))
        for code in GATE_CODES
    }
    assert labels == {
        ErrorCode.TOOL_UNKNOWN: "denied_registry",
        ErrorCode.SCHEMA_INVALID: "denied_schema",
        ErrorCode.PERMISSION_DENIED: "denied_permission",
        ErrorCode.APPROVAL_REQUIRED: "needs_approval",
        ErrorCode.APPROVAL_INVALID: "denied_approval",
        ErrorCode.RUN_TERMINATED: "denied_terminated",
    }
    for reason in TerminationReason:
        ended = Termination(reason=reason, limit="1", observed="2", at=at)
        decision = GateDecision(
            request=request, allowed=False, code=ErrorCode.RUN_TERMINATED, termination=ended
        )
        expected = "denied_loop" if reason is TerminationReason.LOOP_DETECTED else "denied_bounds"
        assert metrics.gate_outcome(decision) == expected
    assert metrics.gate_outcome(GateDecision(request=request, allowed=True)) == "allowed"
    # Outside a workflow or an activity, recording is a no-op rather than an error.
    metrics.record_approval_requested("t", "refund")
