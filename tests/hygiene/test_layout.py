"""One hop from a name to its code: a tool ``tools.<p>.<NAME>`` (``<p>.<name>@v``) is
implemented by the method ``<name>`` in ``activities/<p>_activities.py``; a flow's
``FlowName`` in ``workflows.ids`` is the workflow the worker registers, in
``workflows/<context>/<module>.py``; the architecture page's table names every flow."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
from temporalio import activity, workflow

from kernel.tools import CATALOG, WORKFLOW_TOOLS
from workers.worker import WORKFLOWS
from workflows.ids import FLOWS

pytestmark = pytest.mark.hygiene

ROOT = Path(__file__).resolve().parents[2]
# Tools whose activity comes later (none now; llm.complete landed with #12).
NOT_YET: frozenset[str] = frozenset()


def activity_names(module: str) -> dict[str, str]:
    """``activity type → method name`` of every activity method of a module's classes."""
    found: dict[str, str] = {}
    for _, cls in inspect.getmembers(importlib.import_module(module), inspect.isclass):
        for attr, fn in vars(cls).items():
            defn = activity._Definition.from_callable(fn) if callable(fn) else None
            if defn is not None and defn.name:
                found[defn.name] = attr
    return found


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def test_every_tool_is_implemented_where_its_name_says() -> None:
    misplaced = []
    for contract in CATALOG:
        if contract.name in NOT_YET:
            continue
        prefix, method = contract.name.split(".", 1)
        found = activity_names(f"activities.{prefix}_activities")
        if found.get(contract.activity_name) != method:
            misplaced.append(f"{contract.ref} not {prefix}_activities.py:{method}")
    assert misplaced == []


def test_every_flow_is_one_name_the_worker_registers() -> None:
    registered = {workflow._Definition.must_from_class(cls).name: cls for cls in WORKFLOWS}
    assert set(registered) == {flow.type for flow in FLOWS}
    for flow in FLOWS:
        module = registered[flow.type].__module__.split(".")
        assert module[0] == "workflows" and len(module) == 3, module
        assert module[2] == snake(flow.type), (flow.type, module)
        assert flow.key in WORKFLOW_TOOLS, flow.key
        assert flow.workflow_id("t", "k") == f"{flow.prefix}:t:k"
    assert len({f.prefix for f in FLOWS}) == len(FLOWS)  # no two flows share an id space


def test_the_architecture_table_names_every_flow() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| ") and "`" in line]
    for flow in FLOWS:
        (row,) = [r for r in rows if f"| `{flow.type}` |" in r]
        assert f"`{flow.prefix}:{{tenant}}:" in row and f"| `{flow.key}` |" in row, row
        module = inspect.getfile(
            next(c for c in WORKFLOWS if workflow._Definition.must_from_class(c).name == flow.type)
        )
        assert f"`{Path(module).relative_to(ROOT)}`" in row, row


def test_the_checks_see_a_misplaced_tool() -> None:
    """Not vacuous: the finder sees the real activities, and a wrong place is a miss."""
    stripe = activity_names("activities.stripe_activities")
    assert stripe["stripe.capture_payment@1"] == "capture_payment"
    assert "stripe.capture_payment@1" not in activity_names("activities.shopify_activities")
    assert snake("ReconcileDrift") == "reconcile_drift"
    assert snake("WISMO") == "wismo"


def test_the_approval_flows_are_the_ones_that_take_decisions() -> None:
    """``APPROVAL_FLOWS`` (told when a key changes) is every registered flow with the
    ``decide`` update, so a new flow that asks people is never left out."""
    from workflows.common.handlers import ApprovalHandlers
    from workflows.ids import APPROVAL_FLOWS

    deciding = {
        workflow._Definition.must_from_class(cls).name
        for cls in WORKFLOWS
        if issubclass(cls, ApprovalHandlers)
    }
    assert {flow.type for flow in APPROVAL_FLOWS} == deciding
