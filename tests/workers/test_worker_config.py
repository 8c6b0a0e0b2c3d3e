"""The worker refuses to start on an invalid BusinessConfig (before connecting)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autobiz.business_config import load_configs
from autobiz.errors import ConfigError
from autobiz.settings import Settings
from workers.worker import run_worker

pytestmark = pytest.mark.unit
DEMO = Path(__file__).resolve().parents[2] / "config" / "demo-shop.yaml"


def test_demo_config_loads() -> None:
    assert set(load_configs(DEMO.parent)) == {"demo-shop"}


async def test_invalid_config_refuses_to_start(tmp_path: Path) -> None:
    bad = DEMO.read_text().replace("on_timeout: FAIL", "on_timeout: ESCALATE", 1)
    (tmp_path / "demo-shop.yaml").write_text(bad)
    with pytest.raises(ConfigError):
        await run_worker(Settings(config_dir=tmp_path))
    with pytest.raises(ConfigError):
        load_configs(tmp_path / "empty")
