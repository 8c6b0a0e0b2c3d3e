"""The layer order, read from the imports: the base never imports the roof, the kernel
imports nothing of ours, workflows reach only deterministic code, and production code
never imports the sandbox (dev tooling) or the roof (CLI, dev stack, demo)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.hygiene

ROOT = Path(__file__).resolve().parents[2]
ROOF = ("autobiz.cli", "autobiz.devstack", "autobiz.demo", "autobiz.soak")
# The packages whose imports are checked; ours besides them: bench and tests.
CHECKED = (
    "autobiz",
    "kernel",
    "workflows",
    "activities",
    "workers",
    "starters",
    "ingress",
    "sandbox",
)
OURS = (*CHECKED, "bench", "tests")

# Each group and the groups it may import (besides itself), lowest first.
ALLOWED: dict[str, frozenset[str]] = {
    "kernel": frozenset(),
    "base": frozenset({"kernel"}),
    "workflows": frozenset({"kernel", "base"}),
    "activities": frozenset({"kernel", "base", "workflows"}),
    "starters": frozenset({"kernel", "base", "workflows", "activities"}),
    "ingress": frozenset({"kernel", "base", "workflows", "starters"}),
    "workers": frozenset({"kernel", "base", "workflows", "activities", "starters"}),
    "sandbox": frozenset({"kernel", "base"}),
    "roof": frozenset(
        {"kernel", "base", "workflows", "activities", "starters", "ingress", "workers", "sandbox"}
    ),
}
# What a flow's outside may know of it: its names and ids, and each context's models.
MODELS = (
    "workflows.ids",
    *(
        f"workflows.{p.parent.name}.models"
        for p in sorted((ROOT / "workflows").glob("*/models.py"))
    ),
)
# Finer rules inside a permitted edge: what of the upper group may be imported.
ONLY: dict[tuple[str, str], tuple[str, ...]] = {
    # Workflow code is deterministic: of the base, only the search-attribute keys.
    ("workflows", "base"): ("autobiz.search_attributes",),
    # Activities and starters know workflows by their models and ids, never their code.
    ("activities", "workflows"): MODELS,
    ("ingress", "workflows"): MODELS,
    ("starters", "workflows"): (
        *MODELS,
        "workflows.common.approvals",
        "workflows.common.handlers",
    ),
    # A starter borrows the worker's context compiler, nothing else of the activities.
    ("starters", "activities"): ("activities.config_activities",),
}


def group_of(module: str) -> str:
    if module.startswith(ROOF):
        return "roof"
    top = module.split(".")[0]
    return "base" if top == "autobiz" else top


def imports() -> Iterator[tuple[str, str, int]]:
    for package in CHECKED:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    if name.split(".")[0] in OURS:
                        yield module, name, node.lineno


def violations() -> list[str]:
    found = []
    for module, name, line in imports():
        src, dst = group_of(module), group_of(name)
        if src == dst:
            continue
        where = f"{module}:{line} imports {name}"
        if dst not in ALLOWED.get(src, frozenset()):
            found.append(f"{where} ({src} may not import {dst})")
        elif (only := ONLY.get((src, dst))) and not name.startswith(only):
            found.append(f"{where} ({src} may import only {', '.join(only)} of {dst})")
    return found


def test_every_import_follows_the_layer_order() -> None:
    assert violations() == []


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    """The rules would catch an upward import (the test is not vacuous)."""
    assert group_of("autobiz.cli.main") == "roof" and group_of("autobiz.db.database") == "base"
    assert "roof" not in ALLOWED["base"] and "sandbox" not in ALLOWED["workers"]
    assert sum(1 for _ in imports()) > 200
    sample = [
        ("autobiz.settings", "autobiz.cli.main"),
        ("workflows.payments.refund", "autobiz.db"),
        ("workers.worker", "sandbox.app"),
        ("kernel.gate", "autobiz.settings"),
    ]
    for src, dst in sample:
        s, d = group_of(src), group_of(dst)
        only = ONLY.get((s, d))
        assert d not in ALLOWED[s] or (only and not dst.startswith(only)), (src, dst)
