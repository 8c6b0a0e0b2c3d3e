"""The ``wismo:`` settings parse with their defaults, and a draft that could never fit
the flow's token bound is a config error, not a run that fails at the gate."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from autobiz.business_config import load_business_config
from kernel.config import BusinessConfig, WismoConfig

pytestmark = pytest.mark.unit

CONFIG = Path(__file__).resolve().parents[2] / "config" / "demo-shop.yaml"


def test_the_demo_shop_pins_its_model_and_reviewers() -> None:
    config = load_business_config(CONFIG)
    assert config.wismo.model == "template-v1" and config.wismo.review_roles == ("ops_lead",)
    assert config.wismo.review_timeout == timedelta(hours=24)
    assert config.workflows["wismo"].bounds is not None
    assert WismoConfig().confidence_threshold == 0.75


def test_a_draft_over_the_token_bound_is_refused() -> None:
    data = load_business_config(CONFIG).model_dump()
    data["wismo"]["max_tokens"] = 5000
    with pytest.raises(ValidationError, match=r"wismo\.max_tokens"):
        BusinessConfig.model_validate(data)
    with pytest.raises(ValidationError):
        WismoConfig(confidence_threshold=1.5)
