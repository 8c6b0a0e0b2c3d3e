"""`.ci/stages.py` plans its stages into two lanes that run side by side; each stage is
run once, in the pipeline's order within its lane, and `--lanes 1` keeps the old order."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def _stages() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_stages", ROOT / ".ci" / "stages.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("ci_stages", module)
    spec.loader.exec_module(module)
    return module


def test_two_lanes_hold_every_stage_once_in_order() -> None:
    ci = _stages()
    lanes = ci.plan(None, 2)
    assert lanes == [["hygiene", "unit", "integration"], ["e2e", "golden"]]
    flat = [s for lane in lanes for s in lane]
    assert sorted(flat) == sorted(ci.STAGES) and len(flat) == len(set(flat))


def test_only_and_one_lane() -> None:
    ci = _stages()
    assert ci.plan(["golden", "unit"], 2) == [["unit"], ["golden"]]
    assert ci.plan(["e2e"], 2) == [["e2e"]]
    assert ci.plan(None, 1) == [list(ci.STAGES)]
    assert ci.plan(["golden", "unit"], 1) == [["unit", "golden"]]


def test_each_stage_has_its_own_coverage_file(tmp_path: Path) -> None:
    ci = _stages()
    files = {ci.coverage_file(tmp_path, s) for s in ci.STAGES}
    assert len(files) == len(ci.STAGES)
