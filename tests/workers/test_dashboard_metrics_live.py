"""Every metric the Grafana dashboards and the alert rules read, looked for on the live
endpoints: a real ``autobiz worker`` process and a real ingress, after one order has come
in by webhook and shipped.

One order does not produce every series (no approval, drift, incident, breaker trip or
failure happens in it); those are listed in ``NOT_IN_ONE_ORDER`` and must be exactly the
ones missing: a name that appears, or one that is missing and not listed, fails. The
autobiz_* series of the longer flow are checked against docs/metrics.md by
tests/workers/test_metrics_endpoint.py, which tests/hygiene/test_dashboards.py ties to
the dashboards.
"""

from __future__ import annotations

import pytest

from tests.support.dashboard_metrics import used_metric_names
from tests.support.sandbox import sandbox, sandbox_server  # noqa: F401
from tests.workers.test_metrics_endpoint import (  # noqa: F401
    Live,
    Scrape,
    live,
    order_by_webhook,
    ship_and_finish,
)
from tests.workers.test_worker_kill import rig  # noqa: F401

pytestmark = pytest.mark.integration

# Series that appear only with an event one shipped order does not have.
NOT_IN_ONE_ORDER = {
    # The database gauges have a series once a row had those labels (workers/ledger_gauges.py).
    "autobiz_approval_backlog": "a pending approval",
    "autobiz_approval_backlog_oldest_age_seconds": "a pending approval",
    "autobiz_invariant_violations_open": "an incident",
    "autobiz_reconciliation_drift_open": "a drift row",
    "autobiz_approval_notices_total": "a reminder or escalation",
    "autobiz_approval_outcomes_total": "an approval decided",
    "autobiz_approval_requests_total": "an approval asked",
    "autobiz_approval_signals_dropped_total": "a forged decision signal",
    "autobiz_approval_wait_seconds_bucket": "an approval decided",
    "autobiz_breaker_rejections_total": "a call an open breaker failed fast",
    "autobiz_breaker_transitions_total": "a breaker trip",
    "autobiz_invariant_violations_total": "an incident opened",
    "autobiz_reconciliation_drift_detected_total": "a reconciliation finding drift",
    "autobiz_reconciliation_drift_resolved_total": "a drift resolved",
    "autobiz_run_terminations_total": "a run terminated by a bound",
    "temporal_activity_execution_failed_total": "an activity failing",
    "temporal_workflow_failed_total": "a workflow failing",
    "temporal_workflow_task_execution_failed_total": "a workflow task failing",
}


def exported(scrape: Scrape) -> set[str]:
    """The series names a scrape declares (``# TYPE``; the ingress declares its labelled
    families before their first sample), a histogram's as ``_bucket/_sum/_count``."""
    names: set[str] = set()
    for name, kind in scrape.types.items():
        parts = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
        names |= {name + part for part in parts}
    return names


async def test_every_dashboard_and_alert_metric_is_on_a_live_endpoint(live: Live) -> None:  # noqa: F811
    workflow_id, _ = await order_by_webhook(live.rig, 4200)
    assert (await ship_and_finish(live.rig, workflow_id)).state == "completed"
    worker = await live.worker_when(
        "temporal_workflow_completed_total", 1, workflow_type="OrderFulfill"
    )
    ingress = await live.ingress()

    offered = exported(worker) | exported(ingress)
    used = used_metric_names()
    assert len(used) > 40
    missing = used - offered
    unexplained = sorted(missing - set(NOT_IN_ONE_ORDER))
    assert not unexplained, f"read by a dashboard or rule, not exported: {unexplained}"
    appeared = sorted(set(NOT_IN_ONE_ORDER) - missing)
    assert not appeared, f"exported now, drop from NOT_IN_ONE_ORDER: {appeared}"
