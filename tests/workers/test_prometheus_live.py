"""The alert rules and the dashboards against a real Prometheus scraping a real worker
process and ingress after an order shipped: both targets up, every rule evaluates
without error (no many-to-many match, no bad function on real series), no alert of a
healthy stack fires, and every dashboard query is accepted by Prometheus's engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.dashboard_metrics import RULES, dashboard_queries, rules
from tests.support.prometheus_server import api, prometheus
from tests.support.sandbox import sandbox, sandbox_server  # noqa: F401
from tests.workers.test_metrics_endpoint import (  # noqa: F401
    Live,
    live,
    order_by_webhook,
    ship_and_finish,
)
from tests.workers.test_worker_kill import rig  # noqa: F401

pytestmark = pytest.mark.integration
T = TypeVar("T")

# Alerts a healthy stack may show as pending or firing right after it starts: none.
HEALTHY_FIRING: set[str] = set()


async def _until(probe: Callable[[], Awaitable[T | None]], within: float, what: str) -> T:
    deadline = time.monotonic() + within
    while True:
        got = await probe()
        if got:
            return got
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.5)


async def test_rules_and_dashboards_on_a_real_prometheus(live: Live, tmp_path: Path) -> None:  # noqa: F811
    workflow_id, _ = await order_by_webhook(live.rig, 4200)
    assert (await ship_and_finish(live.rig, workflow_id)).state == "completed"

    targets = {
        "autobiz-worker": urlsplit(live.worker_url).netloc,
        "autobiz-ingress": urlsplit(live.ingress_url).netloc,
    }
    with prometheus(tmp_path, targets, sorted(RULES.glob("*.yml"))) as url:
        async with httpx.AsyncClient(timeout=10) as client:

            async def both_up() -> bool | None:
                active = (await api(client, url, "targets"))["activeTargets"]
                up = sorted(t["labels"]["job"] for t in active if t["health"] == "up")
                return up == sorted(targets) or None

            await _until(both_up, 30, "worker and ingress scraped")

            expected = len(list(rules()))

            async def evaluated() -> list[dict[str, Any]] | None:
                groups = (await api(client, url, "rules"))["groups"]
                found = [rule for group in groups for rule in group["rules"]]
                assert len(found) == expected
                return found if all(r["health"] != "unknown" for r in found) else None

            # a few evaluation rounds with both targets' series in
            await asyncio.sleep(3)
            found = await _until(evaluated, 30, "every rule evaluated")
            broken = [f"{r['name']}: {r['lastError']}" for r in found if r["health"] != "ok"]
            assert not broken, broken
            active = {r["name"] for r in found if r.get("type") == "alerting" and r["alerts"]}
            assert active == HEALTHY_FIRING, f"alerts of a healthy stack: {sorted(active)}"

            # The recording rules have output for the tenant whose order ran.
            lcb = await api(client, url, "query", query="autobiz:gate_decisions:increase1h")
            assert {s["metric"]["tenant"] for s in lcb["result"]} == {live.rig.tenant}

            # Every dashboard query is one Prometheus runs.
            for _, expr in dashboard_queries():
                await api(client, url, "query", query=expr)  # its status is checked
            workers = await api(client, url, "query", query='sum(up{job="autobiz-worker"})')
            assert float(workers["result"][0]["value"][1]) == 1
