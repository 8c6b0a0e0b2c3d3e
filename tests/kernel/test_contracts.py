"""Contracts and the catalog: strict models, JSON Schema export, registry lookup."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kernel.contracts import HitlMode, SideEffect, ToolContract, ToolModel, split_ref
from kernel.errors import ToolUnknownError
from kernel.registry import ToolRegistry
from kernel.tools import REGISTRY, WORKFLOW_TOOLS
from kernel.tools.stripe import CreateRefundInput

pytestmark = pytest.mark.unit


def test_every_contract_exports_a_closed_schema() -> None:
    for contract in REGISTRY:
        schema = contract.input_schema()
        assert schema.get("additionalProperties") is False, contract.ref
        assert contract.output_schema()["type"] == "object"
        assert contract.activity_name == contract.ref


def test_money_is_integer_minor_units_and_iso_currency() -> None:
    with pytest.raises(ValidationError):
        CreateRefundInput(
            payment_intent_id="pi_1",
            order_id="1",
            refund_request_id="r",
            amount_minor=12.5,  # type: ignore[arg-type]
            currency="USD",
        )
    with pytest.raises(ValidationError):
        CreateRefundInput(
            payment_intent_id="pi_1",
            order_id="1",
            refund_request_id="r",
            amount_minor=1250,
            currency="usd",
        )


def test_financial_contracts_default_to_hitl() -> None:
    for contract in REGISTRY:
        if contract.side_effect is SideEffect.FINANCIAL:
            assert contract.default_hitl is HitlMode.ALWAYS


def test_financial_contract_without_hitl_is_refused() -> None:
    with pytest.raises(ValueError, match="HITL"):
        ToolContract(
            name="x.pay",
            version="1",
            description="",
            input_model=ToolModel,
            output_model=ToolModel,
            side_effect=SideEffect.FINANCIAL,
            provider="x",
            scopes=frozenset(),
        )


def test_registry_lookup() -> None:
    assert REGISTRY.get("stripe.create_refund", "1").ref == "stripe.create_refund@1"
    with pytest.raises(ToolUnknownError) as info:
        REGISTRY.get("stripe.create_refund", "2")
    assert info.value.code == "TOOL_UNKNOWN"
    assert "stripe.create_refund@1" in REGISTRY
    with pytest.raises(ValueError):
        ToolRegistry([REGISTRY.get("llm.complete", "1")] * 2)
    assert split_ref("a.b@1") == ("a.b", "1")
    with pytest.raises(ValueError):
        split_ref("a.b")


def test_workflow_tool_closures_reference_registered_tools() -> None:
    for refs in WORKFLOW_TOOLS.values():
        assert all(ref in REGISTRY for ref in refs)
