"""docs/metrics.md and the code name the same metrics: every row of its tables is a
metric the code defines (same type, same labels) and every metric the code defines is a
row. The worker's come from the catalogue in ``kernel.metrics``, the ingress's from its
registry; nothing outside the catalogued modules creates an SDK metric."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase

from autobiz.breakers import metrics as breaker_metrics
from ingress.metrics import IngressMetrics
from kernel.metrics import BREAKER_METRICS, WORKER_METRICS
from tests.support.metrics_doc import documented

pytestmark = pytest.mark.hygiene

ROOT = Path(__file__).resolve().parents[2]
# The modules allowed to create instruments on an SDK meter (each one's names catalogued).
METER_MODULES = {"kernel/metrics.py", "workers/ledger_gauges.py", "autobiz/breakers/metrics.py"}
PACKAGES = (
    "activities",
    "autobiz",
    "ingress",
    "kernel",
    "sandbox",
    "starters",
    "workers",
    "workflows",
)


def _ingress() -> set[tuple[str, str, tuple[str, ...]]]:
    metrics = IngressMetrics()
    types = dict(
        re.findall(r"^# TYPE (\S+) (\S+)$", generate_latest(metrics.registry).decode(), re.M)
    )
    found = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            name = value._name + ("_total" if value._type == "counter" else "")
            found.add((name, types[name], tuple(value._labelnames)))
    return found


def test_worker_table_is_the_catalogue() -> None:
    doc = {(m.name, m.kind, m.labels) for m in documented() if m.endpoint == "worker"}
    code = {(s.name, s.kind, s.labels) for s in WORKER_METRICS}
    assert sorted(doc - code) == [], "in docs/metrics.md, not in kernel.metrics"
    assert sorted(code - doc) == [], "in kernel.metrics, not in docs/metrics.md"


def test_ingress_table_is_the_registry() -> None:
    doc = {(m.name, m.kind, m.labels) for m in documented() if m.endpoint == "ingress"}
    code = _ingress()
    assert sorted(doc - code) == [], "in docs/metrics.md, not in ingress.metrics"
    assert sorted(code - doc) == [], "in ingress.metrics, not in docs/metrics.md"


def test_names_follow_the_conventions() -> None:
    for m in documented():
        assert re.fullmatch(r"autobiz_[a-z0-9]+(_[a-z0-9]+)*", m.name), m.name
        assert m.name.endswith("_total") == (m.kind == "counter"), m.name
        if m.kind == "histogram":
            assert m.name.endswith("_seconds"), f"{m.name}: a duration in seconds"
        assert not re.search(r"_(ms|milliseconds|msec|sec|secs|minutes|hours)(_|$)", m.name)


def test_the_breakers_record_the_catalogued_names() -> None:
    assert {s.sdk_name for s in BREAKER_METRICS} == set(breaker_metrics.METRIC_NAMES)


def test_no_metric_is_created_outside_the_catalogued_modules() -> None:
    creates = re.compile(r"\.create_(counter|gauge|gauge_float|histogram\w*)\(")
    offenders = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if creates.search(path.read_text()) and str(path.relative_to(ROOT)) not in METER_MODULES
    ]
    assert offenders == []
