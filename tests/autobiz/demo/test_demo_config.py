"""The demo's tenant config is the real one with a business day's durations squeezed
into a minute, and nothing else changed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from autobiz.business_config import load_business_config

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3] / "config"


def _without_durations(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_durations(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_durations(v) for v in value]
    return "<duration>" if isinstance(value, timedelta) else value


def test_demo_config_differs_only_in_durations() -> None:
    real = load_business_config(ROOT / "demo-shop.yaml")
    demo = load_business_config(ROOT / "demo" / "demo-shop.yaml")
    assert _without_durations(demo.model_dump()) == _without_durations(real.model_dump())
    assert demo.model_dump() != real.model_dump()


def test_demo_durations_fit_in_a_minute() -> None:
    demo = load_business_config(ROOT / "demo" / "demo-shop.yaml")
    timeouts = [rule.timeout for wf in demo.workflows.values() for rule in wf.hitl]
    assert timeouts and max(t for t in timeouts if t is not None) <= timedelta(seconds=30)
    assert sum(demo.dunning.schedule, timedelta()) <= timedelta(seconds=15)
