"""Idempotency keys: deterministic, canonical (RFC 8785), and sensitive to every part."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.idempotency import canonical_json, external_key, internal_key, keys_for

pytestmark = pytest.mark.unit

# JSON values as pydantic would dump them: i-JSON safe integers and finite floats.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
inputs = st.dictionaries(st.text(max_size=12), json_values, max_size=6)

BASE = {
    "tenant": "demo-shop",
    "workflow_id": "refund:demo-shop:r1",
    "step": "refund",
    "tool": "stripe.create_refund@1",
}


def _reorder(value):
    if isinstance(value, dict):
        return {k: _reorder(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reorder(v) for v in value]
    return value


@given(inputs)
def test_key_is_deterministic_and_ignores_key_order(data: dict) -> None:
    k1 = internal_key(**BASE, input=data)
    k2 = internal_key(**BASE, input=_reorder(data))
    # A JSON round trip (what crossing Temporal does) changes nothing either.
    k3 = internal_key(**BASE, input=json.loads(json.dumps(data)))
    assert k1 == k2 == k3
    assert re.fullmatch(r"[0-9a-f]{64}", k1)


@given(inputs, st.sampled_from(sorted(BASE)), st.text(min_size=1, max_size=10))
def test_every_part_changes_the_key(data: dict, field: str, suffix: str) -> None:
    changed = {**BASE, field: BASE[field] + suffix}
    assert internal_key(**BASE, input=data) != internal_key(**changed, input=data)


@given(inputs, st.text(max_size=10), json_scalars)
def test_input_changes_change_the_key(data: dict, key: str, value) -> None:
    other = {**data, key: value}
    if other == data or json.dumps(other, sort_keys=True) == json.dumps(data, sort_keys=True):
        return
    assert internal_key(**BASE, input=data) != internal_key(**BASE, input=other)


def test_unicode_is_not_normalised_but_is_stable() -> None:
    composed = {"name": "caf\u00e9"}
    decomposed = {"name": "cafe\u0301"}
    assert internal_key(**BASE, input=composed) == internal_key(**BASE, input={"name": "café"})
    # RFC 8785 hashes code points as given: different strings are different requests.
    assert internal_key(**BASE, input=composed) != internal_key(**BASE, input=decomposed)
    assert canonical_json({"é": "😀", "a": 1}) == '{"a":1,"é":"😀"}'.encode()


def test_numbers_are_canonical() -> None:
    # ECMAScript number serialisation: 1.0 == 1, 1e2 == 100, -0 == 0.
    assert canonical_json({"n": 1.0}) == canonical_json({"n": 1}) == b'{"n":1}'
    assert canonical_json({"n": 1e2}) == b'{"n":100}'
    assert canonical_json({"n": -0.0}) == b'{"n":0}'
    assert canonical_json({"n": 1e21}) == b'{"n":1e+21}'
    assert internal_key(**BASE, input={"amount": 5000}) == internal_key(
        **BASE, input={"amount": 5000.0}
    )


def test_known_vector_and_external_format() -> None:
    material = canonical_json({**BASE, "input": {"amount_minor": 5000, "currency": "USD"}})
    assert material == (
        b'{"input":{"amount_minor":5000,"currency":"USD"},"step":"refund",'
        b'"tenant":"demo-shop","tool":"stripe.create_refund@1","workflow_id":"refund:demo-shop:r1"}'
    )
    keys = keys_for(**BASE, input={"currency": "USD", "amount_minor": 5000})
    assert keys.internal == hashlib.sha256(material).hexdigest()
    assert keys.external == "autobiz:" + hashlib.sha256(keys.internal.encode()).hexdigest()[:32]
    assert len(keys.external) == len("autobiz:") + 32
    assert external_key(keys.internal) == keys.external
