"""The Grafana dashboards (dashboards/*.json) are what dashboards/build.py writes, they
query the provisioned Prometheus, every query parses as PromQL, and every metric the
dashboards and the alert rules read is one the worker or the ingress exports
(docs/metrics.md, whose names tests/workers/test_metrics_endpoint.py finds on the live
endpoints) or one the installed Temporal SDK declares."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.support.dashboard_metrics import (
    dashboard_files,
    dashboard_queries,
    family,
    label_uses,
    metric_names,
    recorded_names,
    rule_queries,
    rules,
    sdk_base,
    sdk_label_keys,
    sdk_metric_bases,
    used_metric_names,
)
from tests.support.metrics_doc import documented

pytestmark = pytest.mark.hygiene

ROOT = Path(__file__).resolve().parents[2]
PROVISIONED = ROOT / "infra" / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
# DESIGN §8's dashboards, plus the Temporal SDK view and the ingress.
TOPICS = {
    "autobiz-gates",
    "autobiz-hitl",
    "autobiz-breakers",
    "autobiz-reconciliation",
    "autobiz-invariants",
    "autobiz-cost",
    "autobiz-temporal",
    "autobiz-ingress",
}
# Labels Prometheus adds to every scraped series, and those the SDK adds to the worker's.
TARGET_LABELS = {"instance", "job"}
SDK_SERIES_LABELS = {"service_name", "namespace", "task_queue", "workflow_type", "activity_type"}


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboards_build", ROOT / "dashboards/build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _boards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in dashboard_files()]


def test_committed_json_is_what_the_generator_writes() -> None:
    build = _builder()
    committed = {path.name for path in dashboard_files()}
    assert committed == {board.file for board in build.BOARDS}, "a dashboard without a builder"
    for board in build.BOARDS:
        text = (ROOT / "dashboards" / board.file).read_text()
        assert text == build.render(board), f"{board.file} stale: run python dashboards/build.py"


def test_the_topics_are_covered_once_each() -> None:
    uids = [board["uid"] for board in _boards()]
    assert len(uids) == len(set(uids))
    assert set(uids) == TOPICS


def test_every_panel_queries_the_provisioned_prometheus() -> None:
    provisioned = yaml.safe_load(PROVISIONED.read_text())["datasources"]
    uid = next(d["uid"] for d in provisioned if d["type"] == "prometheus")
    for board in _boards():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        chosen = variables["datasource"]
        assert chosen["type"] == "datasource" and chosen["query"] == "prometheus"
        assert chosen["current"]["value"] == uid, f"{board['uid']}: default is not {uid}"
        panels = [p for p in board["panels"] if p["type"] != "row"]
        assert panels, board["uid"]
        for panel in panels:
            refs = [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
            assert all(r == {"type": "prometheus", "uid": "${datasource}"} for r in refs), panel
            assert panel["targets"], f"{board['uid']}: {panel['title']} has no query"


def test_every_query_parses() -> None:
    queries = [*dashboard_queries(), *rule_queries()]
    assert len(queries) > 50
    for where, expr in queries:
        try:
            assert metric_names(expr), f"{where}: selects no metric"
        except ValueError as exc:
            raise AssertionError(f"{where}: {exc}\n{expr}") from None


def test_the_parser_check_can_fail() -> None:
    with pytest.raises(ValueError):
        metric_names("sum by (tenant (rate(autobiz_gate_decisions_total[5m]))")
    assert metric_names('a_total / on() b offset 1h or {__name__="c"}') == {"a_total", "b", "c"}


def test_every_metric_read_is_exported() -> None:
    docs = {m.name: m for m in documented()}
    histograms = {name for name, m in docs.items() if m.kind == "histogram"}
    missing = []
    for name in sorted(used_metric_names()):
        if name.startswith("temporal_"):
            if sdk_base(name) not in sdk_metric_bases():
                missing.append(f"{name} (not declared by the Temporal SDK)")
        elif family(name, histograms) not in docs:
            missing.append(f"{name} (not in docs/metrics.md)")
    assert not missing, "\n".join(missing)


def test_recording_rules_used_by_dashboards_exist() -> None:
    used = set().union(*(metric_names(expr) for _, expr in dashboard_queries()))
    recorded = {n for n in used if ":" in n}
    assert recorded, "the gate dashboard reads the Wilson bound recording rule"
    assert recorded <= recorded_names()


def _known_labels() -> dict[str, set[str]]:
    """Per series name, the labels a query may match on or group by."""
    known: dict[str, set[str]] = {"up": set(TARGET_LABELS)}
    for m in documented():
        own = set(m.labels) | TARGET_LABELS
        if m.endpoint == "worker":
            own |= SDK_SERIES_LABELS
        if m.kind == "histogram":
            for suffix in ("_sum", "_count"):
                known[m.name + suffix] = own
            known[m.name + "_bucket"] = own | {"le"}
        known[m.name] = own
    sdk = set(sdk_label_keys()) | {"service_name"} | TARGET_LABELS
    for name in used_metric_names():
        if name.startswith("temporal_"):
            known[name] = sdk | ({"le"} if name.endswith("_bucket") else set())
    for rule in rules():  # a recording rule keeps (at most) the labels of what it reads
        if "record" in rule:
            read = metric_names(rule["expr"])
            known[rule["record"]] = set().union(*(known.get(n, set()) for n in read))
    return known


def test_every_label_a_query_uses_exists_on_its_metrics() -> None:
    """A typo in a label (`tenat`, a `state` label the breaker gauge does not have) would
    make a panel empty and an alert silent without any error."""
    known = _known_labels()
    wrong = []
    for where, expr in [*dashboard_queries(), *rule_queries()]:
        for scope, label in label_uses(expr):
            if not any(label in known.get(name, set()) for name in scope):
                wrong.append(f"{where}: {label} on {sorted(scope)}")
    assert not wrong, "\n".join(wrong)


def test_the_label_check_can_fail() -> None:
    known = _known_labels()
    uses = label_uses('max by (provider, tenant) (autobiz_breaker_state{state="open"})')
    assert ({"autobiz_breaker_state"}, "state") in uses
    assert "state" not in known["autobiz_breaker_state"]
