"""Property tests of the Stripe idempotency rules.

A model of the rules — the first use of a key records (parameters, answer); the same
key with the same parameters replays that answer; with other parameters it is refused
with ``idempotency_error`` — is checked against the store alone and against the sandbox
over real HTTP, for generated sequences of requests.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.idempotency import IdempotencyStore, Outcome, RecordedResponse
from sandbox.server import ServerThread
from tests.support.sandbox import sandbox_settings

KEYS = st.sampled_from(["k1", "k2", "k3"])
PARAMS = st.fixed_dictionaries(
    {
        "amount": st.sampled_from(["100", "250"]),
        "payment_method": st.sampled_from(
            ["pm_card_visa", "pm_card_chargeDeclinedInsufficientFunds"]
        ),
    }
)


@pytest.mark.unit
@given(st.lists(st.tuples(KEYS, st.integers(0, 2)), max_size=30))
def test_store_follows_the_model(ops: list[tuple[str, int]]) -> None:
    store = IdempotencyStore()
    model: dict[str, int] = {}
    for key, params in ops:
        decision = store.begin("acct", key, params)
        if key not in model:
            assert decision.outcome is Outcome.STARTED
            store.finish("acct", key, RecordedResponse(200, {"params": params}))
            model[key] = params
        elif model[key] == params:
            assert decision.outcome is Outcome.REPLAY
            assert decision.response is not None and decision.response.body == {"params": params}
        else:
            assert decision.outcome is Outcome.MISMATCH


@pytest.mark.unit
@given(KEYS, st.integers(0, 2), st.integers(0, 2))
def test_a_key_in_flight_conflicts_and_an_abandoned_key_is_free(key: str, a: int, b: int) -> None:
    store = IdempotencyStore()
    assert store.begin("acct", key, a).outcome is Outcome.STARTED
    second = store.begin("acct", key, b).outcome
    assert second is (Outcome.IN_FLIGHT if a == b else Outcome.MISMATCH)
    store.abandon("acct", key)
    assert store.begin("acct", key, b).outcome is Outcome.STARTED


def _pi_id(payload: dict[str, Any]) -> str:
    """The PaymentIntent of an answer: the object itself, or the one a decline carries."""
    obj = payload["error"]["payment_intent"] if "error" in payload else payload
    return str(obj["id"])


@pytest.mark.integration
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(KEYS, PARAMS), min_size=1, max_size=8))
def test_sandbox_over_http_follows_the_model(
    sandbox_server: ServerThread, ops: list[tuple[str, dict[str, str]]]
) -> None:
    run = uuid.uuid4().hex  # keys and metadata unique to this example
    api_key = sandbox_settings().stripe.api_key.get_secret_value()
    first: dict[str, tuple[dict[str, str], int, str]] = {}
    with httpx.Client(
        base_url=f"{sandbox_server.url}/stripe",
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    ) as http:
        for key, params in ops:
            body = {**params, "currency": "usd", "confirm": "true", "metadata[run]": run}
            response = http.post(
                "/v1/payment_intents", data=body, headers={"Idempotency-Key": f"{run}-{key}"}
            )
            payload = response.json()
            if key not in first:
                assert response.status_code in (200, 402)
                first[key] = (params, response.status_code, _pi_id(payload))
            elif first[key][0] == params:
                assert (response.status_code, _pi_id(payload)) == first[key][1:]
                assert response.headers.get("Idempotent-Replayed") == "true"
            else:
                assert response.status_code == 400
                assert payload["error"]["type"] == "idempotency_error"
        found = http.get(
            "/v1/payment_intents/search", params={"query": f"metadata['run']:'{run}'"}
        ).json()
    assert len(found["data"]) == len(first)
