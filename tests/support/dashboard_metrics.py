"""The PromQL of the Grafana dashboards and the alert rules, parsed with a real PromQL
parser (``promql-parser``, the Rust one), and the metric names it uses.

A live test can check ``used_metric_names()`` against a scrape with ``exported_name``:
histograms are used as ``NAME_bucket`` / ``NAME_sum`` / ``NAME_count``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import promql_parser
import temporalio
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
RULES = ROOT / "infra" / "prometheus" / "rules"
# Grafana's variables, replaced by a value of their kind before parsing.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "6h",
    "$tenant": "demo-shop",
}
# Series Prometheus itself writes for every target.
PROMETHEUS_SERIES = {"up"}


def substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable the parser check does not know: {expr}"
    return expr


def metric_names(expr: str) -> set[str]:
    """Every metric a PromQL expression selects (raises ``ValueError`` if it does not parse)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    names.add(matcher.value)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def dashboard_queries() -> Iterator[tuple[str, str]]:
    """(where, expr) for every panel target and query variable of every dashboard."""
    for path in dashboard_files():
        board = json.loads(path.read_text())
        for panel in _panels(board.get("panels", [])):
            for target in panel.get("targets", []):
                yield f"{path.name}: {panel['title']}", substitute(target["expr"])
        for variable in board.get("templating", {}).get("list", []):
            if variable["type"] == "query":
                match = re.fullmatch(r"label_values\((\w+), *\w+\)", variable["query"])
                assert match, f"{path.name}: variable {variable['name']}: {variable['query']}"
                yield f"{path.name}: ${variable['name']}", match.group(1)


def rules() -> Iterator[dict[str, Any]]:
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            yield from group["rules"]


def rule_queries() -> Iterator[tuple[str, str]]:
    for rule in rules():
        yield rule.get("alert") or rule["record"], rule["expr"]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def used_metric_names() -> set[str]:
    """The exported series the dashboards and rules read (recording rules resolved to
    what they read, Prometheus's own ``up`` left out)."""
    used: set[str] = set()
    for _, expr in [*dashboard_queries(), *rule_queries()]:
        used |= metric_names(expr)
    return used - recorded_names() - PROMETHEUS_SERIES


def family(name: str, histograms: set[str]) -> str:
    """``foo_bucket`` → ``foo`` when ``foo`` is a histogram; else the name."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name.removesuffix(suffix) in histograms:
            return name.removesuffix(suffix)
    return name


@cache
def sdk_metric_bases() -> frozenset[str]:
    """The metric names the installed Temporal SDK's core declares (its Rust sources ship
    in the wheel), without the ``temporal_`` prefix and the exporter's suffixes."""
    core = Path(temporalio.__file__).parent / "bridge" / "sdk-core" / "crates"
    declared = re.compile(r'(?:name: |_NAME: &str =\s*)"([a-z][a-z0-9_]*)"')
    found: set[str] = set()
    for source in core.rglob("*.rs"):
        if "/tests/" in source.as_posix():
            continue
        found |= set(declared.findall(source.read_text(errors="replace")))
    return frozenset(found)


def sdk_base(name: str) -> str:
    """``temporal_activity_schedule_to_start_latency_seconds_bucket`` →
    ``activity_schedule_to_start_latency`` (the exporter adds ``_total`` to counters and
    ``_seconds`` to durations, a histogram's series add their own suffix)."""
    base = name.removeprefix("temporal_")
    for suffix in ("_bucket", "_sum", "_count"):
        base = base.removesuffix(suffix)
    return base.removesuffix("_total").removesuffix("_seconds")


@cache
def sdk_label_keys() -> frozenset[str]:
    """The label keys the installed Temporal SDK's core declares (``KEY_…`` constants)."""
    core = Path(temporalio.__file__).parent / "bridge" / "sdk-core" / "crates"
    declared = re.compile(r'const KEY_[A-Z_]+: &str = "([a-z][a-z0-9_]*)"')
    found: set[str] = set()
    for source in core.rglob("*.rs"):
        if "/tests/" not in source.as_posix():
            found |= set(declared.findall(source.read_text(errors="replace")))
    return frozenset(found)


def label_uses(expr: str) -> list[tuple[set[str], str]]:
    """(metrics in scope, label) for every label an expression matches on or groups by:
    a selector's matchers name its own metric; ``by``/``without`` and ``on``/``ignoring``
    labels must exist on some metric of the sub-expression they apply to."""
    uses: list[tuple[set[str], str]] = []

    def names_in(node: Any) -> set[str]:
        return metric_names(node.prettify()) if node is not None else set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            for matcher in node.matchers.matchers:
                if matcher.name != "__name__" and node.name:
                    uses.append(({node.name}, matcher.name))
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            scope = names_in(node.expr)
            uses.extend((scope, label) for label in node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            matching = node.modifier.matching
            if matching is not None:
                scope = names_in(node.lhs) | names_in(node.rhs)
                uses.extend((scope, label) for label in matching.labels)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return uses
