"""Workflows reach activities only through kernel.call (DESIGN §3, §11)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DIRECT = re.compile(
    r"\b(execute_activity|start_activity|execute_local_activity|start_local_activity)\b"
)


def test_no_workflow_schedules_an_activity_directly() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "workflows").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if DIRECT.search(line)
    ]
    assert offenders == [], "use kernel.call.kernel_call instead: " + ", ".join(offenders)


def test_the_gate_itself_is_free_of_temporal_and_io() -> None:
    for name in (
        "gate",
        "contracts",
        "registry",
        "hitl_lang",
        "idempotency",
        "redaction",
        "cost",
        "config",
        "compiler",
        "policy",
        "state",
        "errors",
        "tools/__init__",
        *(f"tools/{p.stem}" for p in (ROOT / "kernel" / "tools").glob("[!_]*.py")),
    ):
        source = (ROOT / "kernel" / f"{name}.py").read_text()
        assert "temporalio" not in source, name
        for forbidden in ("datetime.now", "time.time", "random.", "open(", "uuid4", "os.environ"):
            assert forbidden not in source, (name, forbidden)
