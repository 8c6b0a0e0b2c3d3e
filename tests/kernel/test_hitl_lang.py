"""The HITL condition language: parsed, never eval'd; errors point at a column."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.hitl_lang import ConditionEvalError, ConditionSyntaxError, holds, parse, paths

pytestmark = pytest.mark.unit

CTX = {
    "input": {
        "amount_minor": 6000,
        "currency": "USD",
        "risk_level": "high",
        "gift": False,
        "note": None,
        "nested": {"depth": 2},
    },
    "tenant": "demo-shop",
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("input.amount_minor >= 5000", True),
        ("input.amount_minor < 5000", False),
        ("input.amount_minor == 6000 and input.currency == 'USD'", True),
        ('input.currency != "EUR"', True),
        ("input.risk_level == 'high' or input.amount_minor >= 50000", True),
        ("not input.gift", True),
        ("not (input.amount_minor > 1 and input.gift)", True),
        ("input.note == null", True),
        ("input.missing == null", True),
        ("input.nested.depth <= 2", True),
        ("input.amount_minor >= 59.99", True),
        ("tenant == 'demo-shop'", True),
        ("true and not false", True),
        ("input.amount_minor == '6000'", False),
        ("input.gift == 0", False),
        ("a or b or input.gift == false", True),
    ],
)
def test_evaluates(source: str, expected: bool) -> None:
    if source.startswith("a or b"):
        with pytest.raises(ConditionEvalError):
            holds(source, CTX)
        return
    assert holds(source, CTX) is expected


def test_precedence_and_binds_tighter_than_or() -> None:
    assert holds("true or false and false", {}) is True
    assert holds("(true or false) and false", {}) is False


@pytest.mark.parametrize(
    ("source", "column"),
    [
        ("input.amount_minor >= ", 23),
        ("input.amount_minor = 5000", 20),
        ("input.amount_minor >= 5000 and", 31),
        ("(input.a > 1", 13),
        ("input.a > 1)", 12),
        ("input.a > 'open", 11),
        ("input..a > 1", 1),
        ("input.a > 1 > 2", 13),
        ("__import__('os').system('x')", 11),
        ("input.a $ 1", 9),
        ("", 1),
    ],
)
def test_syntax_errors_carry_the_column(source: str, column: int) -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse(source)
    assert info.value.column == column, str(info.value)


def test_ordering_mismatched_types_is_an_eval_error() -> None:
    with pytest.raises(ConditionEvalError):
        holds("input.currency > 5", CTX)
    with pytest.raises(ConditionEvalError):
        holds("input.amount_minor", CTX)  # not a boolean


def test_paths() -> None:
    assert paths(parse("input.a > 1 and not (tool.name == 'x')")) == {
        ("input", "a"),
        ("tool", "name"),
    }


@given(st.text(max_size=60))
def test_parser_never_crashes_on_garbage(source: str) -> None:
    try:
        parse(source)
    except ConditionSyntaxError as exc:
        assert 1 <= exc.column <= len(source) + 1
