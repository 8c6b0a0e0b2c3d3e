"""``autobiz_invariant_violations_total{tenant,kind}`` on the worker's Prometheus endpoint:
each new incident counted once by its invariant; a re-detection is not counted again."""

from __future__ import annotations

import pytest

from kernel.metrics import INVARIANT_VIOLATIONS as SPEC
from starters.monitor import start_monitor
from tests.support.sandbox import sandbox, sandbox_server  # noqa: F401
from tests.workers.test_worker_metrics import (  # noqa: F401
    MetricsClient,
    metrics_client,
    metrics_harness,
    total,
)
from tests.workflows.monitor import broken_data as broken
from tests.workflows.support import Harness

pytestmark = pytest.mark.integration
INVARIANT_VIOLATIONS = SPEC.name


async def test_new_incidents_are_counted_by_invariant_once(
    metrics_client: MetricsClient,  # noqa: F811
    metrics_harness: Harness,  # noqa: F811
) -> None:
    m, h = metrics_client, metrics_harness
    await broken.order(h.db, h.tenant, "stuck-1", "paid")
    await broken.order(h.db, h.tenant, "stuck-2", "cancelling")
    for key in ("1", "2"):  # the second run finds the same two again
        handle = await start_monitor(h.client, h.config, task_queue=h.task_queue, key=key)
        await handle.result()
    samples = await m.value_when(INVARIANT_VIOLATIONS, 2, tenant=h.tenant, kind="INV-03")
    assert total(samples, INVARIANT_VIOLATIONS, tenant=h.tenant, kind="INV-03") == 2
    assert total(samples, INVARIANT_VIOLATIONS, tenant=h.tenant, kind="INV-07") == 0
