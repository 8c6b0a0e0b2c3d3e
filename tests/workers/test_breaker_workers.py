"""Circuit breakers across worker processes (issue 14 item 1): two real `autobiz worker`
processes, each on a task queue of its own, share one breaker per provider account
through PostgreSQL, against the sandbox's fault injection.

Worker A's OrderFulfill meets a Printful that answers 503: its failures open the
``printful`` breaker of the tenant. Worker B has never seen a failure, yet its order is
refused before any request (the sandbox counts none) with a retryable ``BREAKER_OPEN``
whose delay is the time left open. After the open time one probe goes through; while
the provider still fails it opens the breaker again, once it answers the breaker
closes, and both orders complete with exactly one capture and one Printful order each.

The sandbox counts Printful order creations with fault rules: the 503 rule fires for the
first ``FAILING`` requests, then a zero-latency rule lets each further request through
and counts it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowHandle

from autobiz.breakers.machine import BreakerState, Policy
from autobiz.breakers.store import BreakerStore
from kernel.policy import RetryTiming
from tests.support.sandbox import sandbox, sandbox_server  # noqa: F401
from tests.support.stack import free_port
from tests.workers.test_worker_kill import Rig, WorkerProcess, rig  # noqa: F401
from tests.workflows.support import eventually, start_fulfil, tenant_config
from workflows.ids import printful_external_id
from workflows.orders.models import OrderFulfillResult

pytestmark = pytest.mark.integration

CREATE_PATH = "/printful/v2/orders"
CREATE_TOOL = "printful.create_order@1"
FAILING = 3  # two open the breaker (threshold 2), the third is the first probe's answer
COUNTER = 1000
OPEN_SECONDS = 5.0
BREAKER_ENV = {
    "AUTOBIZ_BREAKER__FAILURE_THRESHOLD": "2",
    "AUTOBIZ_BREAKER__FAILURE_RATE": "0.5",
    "AUTOBIZ_BREAKER__WINDOW_SECONDS": "60",
    "AUTOBIZ_BREAKER__OPEN_SECONDS": str(OPEN_SECONDS),
    "AUTOBIZ_BREAKER__HALF_OPEN_PROBES": "1",
    "AUTOBIZ_BREAKER__PROBE_TIMEOUT_SECONDS": "20",
}
# The contract's own retry waits (1, 2, 4, 8 s): the tests' usual 0.05 scale would spend
# the five attempts of printful.create_order within one open period.
REAL_RETRIES = RetryTiming(interval_scale=1.0)


class Worker:
    def __init__(self, process: WorkerProcess, queue: str, metrics: str, pid: int) -> None:
        self.process, self.queue, self.metrics, self.pid = process, queue, metrics, pid

    async def scrape(self) -> str:
        async with httpx.AsyncClient() as http:
            return (await http.get(f"http://{self.metrics}/metrics")).text


async def _spawn(rig: Rig, name: str) -> Worker:  # noqa: F811
    queue = f"{rig.task_queue}-{name}"
    metrics = f"127.0.0.1:{free_port()}"
    saved = rig.env
    rig.env = {
        **saved,
        **BREAKER_ENV,
        "AUTOBIZ_TEMPORAL__TASK_QUEUE": queue,
        "AUTOBIZ_WORKER__METRICS_BIND": metrics,
        "AUTOBIZ_WORKER__ENSURE_SCHEDULES": "false",
    }
    try:
        process = await rig.spawn()
    finally:
        rig.env = saved
    return Worker(process, queue, metrics, process.proc.pid)


@pytest.fixture
async def counted(rig: Rig) -> AsyncIterator[Rig]:  # noqa: F811
    """Printful order creations answer 503 ``FAILING`` times, then go through counted."""
    control = rig.sandbox.control
    await control.fault("error", CREATE_PATH, method="POST", count=FAILING, status=503)
    await control.fault("latency", CREATE_PATH, method="POST", count=COUNTER, latency_ms=0)
    try:
        yield rig
    finally:
        await control.clear_faults()


def _creations(rig: Rig) -> int:  # noqa: F811
    """Order creations that reached the sandbox (each consumed one rule count)."""
    left = {r.kind: r.count for r in rig.state.faults.rules if r.path == CREATE_PATH}
    return (FAILING - left.get("error", 0)) + (COUNTER - left.get("latency", 0))


async def _last_failure(rig: Rig, handle: WorkflowHandle[Any, Any], tool: str) -> Any:  # noqa: F811
    """The pending ``tool`` activity's last failure (the ApplicationError), if any."""
    for p in (await handle.describe()).raw_description.pending_activities:
        if p.activity_type.name == tool and p.HasField("last_failure"):
            error = await rig.client.data_converter.decode_failure(p.last_failure)
            return error.__cause__ or error
    return None


async def _start(rig: Rig, worker: Worker, order_id: str, pi: str) -> Any:  # noqa: F811
    config = tenant_config(rig.tenant).model_copy(update={"retries": REAL_RETRIES})
    return await start_fulfil(rig.client, config, worker.queue, order_id, pi)


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the series ``name`` whose labels include ``labels``."""
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            return float(match.group(2))
    return None


async def test_one_workers_failures_open_the_breaker_for_the_other(counted: Rig) -> None:
    setup = counted
    store = BreakerStore(setup.db, Policy())
    a = await _spawn(setup, "a")
    b = await _spawn(setup, "b")
    first = await setup.seed_authorized_order("25.00", 2500)
    second = await setup.seed_authorized_order("31.00", 3100)

    async def events() -> list[tuple[str, str]]:
        rows = await store.events(setup.tenant, "printful", limit=100)
        return [(e["from_state"], e["to_state"]) for e in reversed(rows)]

    async def state_is(state: BreakerState) -> bool | None:
        found = await store.status(setup.tenant, "printful")
        return True if found and found[0].breaker.state is state else None

    # Worker A's order: two 503s open the tenant's printful breaker.
    order_a = await _start(setup, a, *first)
    await eventually(lambda: state_is(BreakerState.OPEN), within=60, what="breaker open")
    assert _creations(setup) == 2
    (opened,) = await store.events(setup.tenant, "printful")
    assert opened["detail"]["worker"].endswith(f":{a.pid}")
    assert opened["detail"]["tool"] == CREATE_TOOL

    # After the open time the first probe still meets a 503: open again.
    async def reopened() -> bool | None:
        return (
            True
            if (await events())[-2:] == [("open", "half_open"), ("half_open", "open")]
            else None
        )

    await eventually(reopened, within=30, what="the probe to fail and reopen the breaker")
    assert _creations(setup) == FAILING  # the probe was the only request while not closed

    # Worker B's order, while the breaker is open: refused before any request.
    order_b = await _start(setup, b, *second)

    async def refused() -> Any:
        error = await _last_failure(setup, order_b, CREATE_TOOL)
        return error if error is not None and error.type == "BREAKER_OPEN" else None

    error = await eventually(refused, within=30, what="worker B's call refused")
    assert _creations(setup) == FAILING  # B never reached the provider
    assert not error.non_retryable
    details = error.details[0]
    assert (details["provider"], details["tenant"], details["state"]) == (
        "printful",
        setup.tenant,
        "open",
    )
    assert 0 < details["retry_in_seconds"] <= OPEN_SECONDS
    assert details["last_failure"].startswith("PROVIDER_UNAVAILABLE")
    # B's own endpoint shows what it saw: the breaker open, a call failed fast.
    b_metrics = await b.scrape()
    assert (
        _sample(b_metrics, "autobiz_breaker_state", provider="printful", tenant=setup.tenant) == 2
    )
    rejected = _sample(b_metrics, "autobiz_breaker_rejections_total", provider="printful")
    assert rejected is not None and rejected >= 1

    # The provider answers again (the 503s are used up): the next probe closes it, and
    # both orders complete.
    await eventually(lambda: state_is(BreakerState.CLOSED), within=60, what="breaker closed")
    result_a: OrderFulfillResult = await setup.ship(order_a)
    result_b: OrderFulfillResult = await setup.ship(order_b)
    assert (result_a.state, result_a.captured_minor) == ("completed", 2500)
    assert (result_b.state, result_b.captured_minor) == ("completed", 3100)

    transitions = await events()
    assert transitions[:4] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
    ]
    assert transitions[4] == ("half_open", "closed")
    # Every request after the two that opened it was a probe (two: one failed, one
    # created its order), then the other order's one creation once closed.
    assert len(transitions) == 5
    assert _creations(setup) == FAILING + 2

    # No side effect lost or doubled: one capture and one Printful order per order.
    for (order_id, pi), minor in ((first, 2500), (second, 3100)):
        intent = await setup.clients.stripe.retrieve_payment_intent(pi)
        assert intent.status == "succeeded" and intent.amount_received == minor
        captures = [
            e
            for e in setup.state.stripe.events
            if e["type"] == "charge.captured" and e["data"]["object"]["payment_intent"] == pi
        ]
        assert len(captures) == 1
        external_id = printful_external_id(setup.tenant, order_id)
        orders = [
            o for o in setup.state.printful.orders.values() if o["external_id"] == external_id
        ]
        assert len(orders) == 1 and orders[0]["status"] == "fulfilled"
    # Both workers' endpoints count the transitions they made.
    made = 0.0
    for worker in (a, b):
        text = await worker.scrape()
        for line in text.splitlines():
            if (
                line.startswith("autobiz_breaker_transitions_total{")
                and f'tenant="{setup.tenant}"' in line
            ):
                made += float(line.rsplit(" ", 1)[1])
    assert made == len(transitions)
