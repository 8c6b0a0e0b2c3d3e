"""The gate, pure: each refusal code, each bound, loop detection, HITL, keys, trace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from kernel.codes import ErrorCode
from kernel.compiler import compile_text
from kernel.errors import TerminationReason
from kernel.gate import Gate, ToolRequest, admit, detect_loop
from kernel.idempotency import keys_for
from kernel.policy import Bounds, LoopPolicy, RunPolicy
from kernel.state import Approval, RunState
from kernel.tools import REGISTRY
from kernel.tools.shopify import GetOrderInput
from kernel.tools.stripe import CreateRefundInput
from tests.kernel.corpus import SECRETS

pytestmark = pytest.mark.unit

T0 = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
DEMO = Path(__file__).resolve().parents[2] / "config" / "demo-shop.yaml"
REFUND = {
    "payment_intent_id": "pi_123",
    "order_id": "1001",
    "refund_request_id": "r1",
    "amount_minor": 2500,
    "currency": "USD",
}


def policy(**bounds: object) -> RunPolicy:
    config = compile_text(DEMO.read_text()).config
    assert config is not None
    base = config.policy_for("refund")
    return base.model_copy(update={"bounds": base.bounds.model_copy(update=bounds)})


def state(pol: RunPolicy | None = None) -> RunState:
    return RunState.start(
        policy=pol or policy(), workflow_id="refund:demo-shop:r1", principal="ops:ana", now=T0
    )


def call(
    st: RunState,
    tool: str,
    input: object,
    *,
    step: str = "s",
    now: datetime = T0,
    approval: Approval | None = None,
    version: str = "1",
):
    decision = Gate(REGISTRY).check(
        st,
        ToolRequest(tool, version, input, step, approval),  # type: ignore[arg-type]
        now,
    )
    admit(st, decision, now)
    return decision


def test_allowed_call_carries_keys_and_counts() -> None:
    st = state()
    d = call(st, "shopify.get_order", {"order_id": "1001"}, step="load")
    assert d.allowed and d.code is None
    assert d.keys == keys_for(
        tenant="demo-shop",
        workflow_id="refund:demo-shop:r1",
        step="load",
        tool="shopify.get_order@1",
        input={"order_id": "1001"},
    )
    assert (st.steps, st.tool_calls) == (1, 1)
    assert isinstance(d.input, GetOrderInput)


def test_tool_unknown() -> None:
    st = state()
    d = call(st, "stripe.teleport_money", {})
    assert d.code is ErrorCode.TOOL_UNKNOWN
    assert (
        call(st, "shopify.get_order", {"order_id": "1"}, version="9").code is ErrorCode.TOOL_UNKNOWN
    )
    assert st.trace[-1].kind == "gate_denied" and st.trace[-1].outcome == "TOOL_UNKNOWN"
    assert st.tool_calls == 0


def test_schema_invalid_rejects_unknown_fields_and_bad_types_without_echoing_values() -> None:
    st = state()
    d = call(st, "shopify.get_order", {"order_id": "1001", "card": SECRETS["visa_plain"]})
    assert d.code is ErrorCode.SCHEMA_INVALID
    assert d.detail["errors"][0]["type"] == "extra_forbidden"
    d = call(st, "stripe.create_refund", {**REFUND, "amount_minor": "lots"})
    assert d.code is ErrorCode.SCHEMA_INVALID
    assert SECRETS["visa_plain"] not in st.model_dump_json()
    # A model of the wrong class is refused too.
    assert (
        call(st, "stripe.create_refund", GetOrderInput(order_id="1")).code
        is ErrorCode.SCHEMA_INVALID
    )
    assert st.denials == {"SCHEMA_INVALID": 3}


def test_permission_denied_by_default_names_principal_tenant_tool_action() -> None:
    st = state()
    d = call(
        st,
        "stripe.capture_payment",
        {"payment_intent_id": "pi_1", "order_id": "1", "amount_minor": 100, "currency": "USD"},
    )
    assert d.code is ErrorCode.PERMISSION_DENIED
    assert d.detail["principal"] == "ops:ana"
    assert d.detail["tenant"] == "demo-shop"
    assert d.detail["tool"] == "stripe.capture_payment@1"
    assert d.detail["action"] == "FINANCIAL"
    # Listed tool, scope missing.
    pol = policy()
    pol = pol.model_copy(update={"scopes": pol.scopes - {"payments:refund"}})
    d = call(state(pol), "stripe.create_refund", REFUND)
    assert d.code is ErrorCode.PERMISSION_DENIED
    assert d.detail["missing_scopes"] == ["payments:refund"]


@pytest.mark.parametrize(
    ("bounds", "reason"),
    [
        ({"max_steps": 2}, TerminationReason.MAX_STEPS),
        ({"max_tool_calls": 2}, TerminationReason.MAX_TOOL_CALLS),
    ],
)
def test_step_and_call_bounds(bounds: dict[str, object], reason: TerminationReason) -> None:
    st = state(policy(**bounds))
    for i in range(2):
        assert call(st, "shopify.get_order", {"order_id": str(i)}).allowed
    d = call(st, "shopify.get_order", {"order_id": "x"})
    assert d.code is ErrorCode.RUN_TERMINATED and d.termination is not None
    assert d.termination.reason is reason
    assert st.summary().termination_reason == reason.value
    # A terminated run refuses everything after.
    assert call(st, "shopify.get_order", {"order_id": "y"}).code is ErrorCode.RUN_TERMINATED


def test_steps_count_state_changes() -> None:
    st = state(policy(max_steps=2))
    st.state_change(T0, "new", "validated")
    st.state_change(T0, "validated", "approved")
    d = call(st, "shopify.get_order", {"order_id": "1"})
    assert d.termination is not None and d.termination.reason is TerminationReason.MAX_STEPS


def test_wall_time_bound_uses_the_passed_now() -> None:
    st = state(policy(max_wall_time=timedelta(minutes=5)))
    assert call(st, "shopify.get_order", {"order_id": "1"}, now=T0 + timedelta(minutes=5)).allowed
    d = call(st, "shopify.get_order", {"order_id": "2"}, now=T0 + timedelta(minutes=5, seconds=1))
    assert d.termination is not None and d.termination.reason is TerminationReason.MAX_WALL_TIME


def test_token_bound_counts_the_requested_budget() -> None:
    pol = policy(max_tokens=1000)
    pol = pol.model_copy(
        update={"tools": pol.tools | {"llm.complete@1"}, "scopes": pol.scopes | {"llm:complete"}}
    )
    llm = {"model": "template-v1", "prompt_id": "p", "prompt_version": "1", "max_tokens": 800}
    st = state(pol)
    assert call(st, "llm.complete", llm).allowed
    st.tokens = 300  # as if the first call used 300
    d = call(st, "llm.complete", {**llm, "prompt_id": "q"})
    assert d.termination is not None and d.termination.reason is TerminationReason.MAX_TOKENS
    assert d.termination.observed == "1100"


def test_cost_bound_projects_the_call_cost() -> None:
    st = state(policy(max_cost_usd=Decimal("0.000100")))
    st.cost_micros = 60
    d = call(st, "shopify.get_order", {"order_id": "1"})  # shopify costs 50 µ$ a call
    assert d.termination is not None and d.termination.reason is TerminationReason.MAX_COST


def test_loop_detection_and_allowlist() -> None:
    st = state()
    for _ in range(2):
        assert call(st, "shopify.get_order", {"order_id": "1"}).allowed
    d = call(st, "shopify.get_order", {"order_id": "1"})
    assert d.termination is not None and d.termination.reason is TerminationReason.LOOP_DETECTED
    # Different inputs are not a loop.
    st = state()
    for i in range(5):
        assert call(st, "shopify.get_order", {"order_id": str(i)}).allowed
    # Allowlisted polling is not a loop.
    pol = policy()
    st = state(pol.model_copy(update={"loop": LoopPolicy(retry_allowlist=("shopify.get_order",))}))
    for _ in range(5):
        assert call(st, "shopify.get_order", {"order_id": "1"}).allowed


def test_loop_of_a_two_call_pattern() -> None:
    a, b = "x@1#a", "y@1#b"
    assert detect_loop([a, b, a, b, a, b], 3, 3, ()) == ([a, b], 3)
    assert detect_loop([a, b, a, b, a], 3, 3, ()) is None
    assert detect_loop([a, b, a, b, a, b], 3, 1, ()) is None
    assert detect_loop([a, b, a, b, a, b], 3, 3, ("x", "y@1")) is None


def test_hitl_threshold_from_the_config_condition() -> None:
    st = state()
    assert call(st, "stripe.create_refund", REFUND).allowed  # 25.00 < 50.00
    big = {**REFUND, "amount_minor": 5000}
    d = call(st, "stripe.create_refund", big)
    assert d.code is ErrorCode.APPROVAL_REQUIRED
    approval = Approval(
        approved=True, approver="ana", role="finance", request_id="h1", decided_at=T0
    )
    assert call(st, "stripe.create_refund", big, approval=approval).allowed
    wrong_role = approval.model_copy(update={"role": "ops_lead"})
    assert (
        call(st, "stripe.create_refund", big, approval=wrong_role).code
        is ErrorCode.APPROVAL_INVALID
    )
    denied = approval.model_copy(update={"approved": False})
    assert call(st, "stripe.create_refund", big, approval=denied).code is ErrorCode.APPROVAL_INVALID
    bound = approval.model_copy(update={"internal_key": "someone-elses"})
    assert call(st, "stripe.create_refund", big, approval=bound).code is ErrorCode.APPROVAL_INVALID


def test_financial_tool_without_a_rule_always_needs_approval() -> None:
    pol = policy()
    st = state(pol.model_copy(update={"hitl": ()}))
    assert call(st, "stripe.create_refund", REFUND).code is ErrorCode.APPROVAL_REQUIRED


def test_gate_order_schema_before_permission() -> None:
    # Not permitted AND invalid: the schema check comes first.
    st = state()
    d = call(st, "stripe.capture_payment", {"bogus": 1})
    assert d.code is ErrorCode.SCHEMA_INVALID


def test_trace_is_allowlisted_and_redacted() -> None:
    st = state()
    call(st, "shopify.get_order", {"order_id": SECRETS["email"]})
    dumped = st.model_dump_json()
    assert SECRETS["email"] not in dumped
    assert isinstance(CreateRefundInput.model_json_schema(), dict)


def test_bounds_model_requires_every_field() -> None:
    with pytest.raises(ValueError):
        Bounds.model_validate({"max_steps": 1})
