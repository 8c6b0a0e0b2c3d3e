"""`autobiz sandbox trigger` against a running `dev up` stack, as an operator uses it: the
event goes out of the sandbox signed, through the real ingress, into Temporal, and the
worker's flow reacts — no curl, no test double between the parts."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.support.stack import autobiz

pytestmark = pytest.mark.e2e


def _json(env: dict[str, str], *args: str) -> Any:
    return json.loads(autobiz(env, *args, "--json").stdout)


def _order_state(env: dict[str, str], order_id: str) -> dict[str, Any]:
    result = autobiz(env, "order", "status", order_id, "--json", check=False)
    if result.returncode == 0:
        return dict(json.loads(result.stdout))
    return {"exit": result.returncode, "out": result.stdout, "err": result.stderr[-2000:]}


def _wait_for(env: dict[str, str], order_id: str, states: set[str], seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        seen = _order_state(env, order_id)
        if seen.get("flow_state") in states:
            return seen
        time.sleep(1)
    raise AssertionError(f"order {order_id} never reached {states}; last status: {seen}")


def test_triggered_events_drive_the_flow_through_the_ingress(stack_env: dict[str, str]) -> None:
    autobiz(stack_env, "dev", "up")

    # orders/paid: a paid order placed in the shop; Shopify's webhook reaches the ingress,
    # which starts the order's OrderFulfill; the worker sends it to Printful.
    paid = _json(stack_env, "sandbox", "trigger", "orders/paid")
    assert paid["provider"] == "shopify" and paid["tenant"] == "demo-shop"
    order_id = paid["object"].rsplit("/", 1)[-1]
    status = _wait_for(stack_env, order_id, {"in_production"}, 90)
    assert status["tenant_id"] == "demo-shop"
    printful_order = str(status["live"]["detail"]["printful_order_id"])

    # shipment_sent for that Printful order: Printful's webhook, through the ingress, is
    # the signal the waiting flow finishes on.
    shipped = _json(stack_env, "sandbox", "trigger", "shipment_sent", "--order", printful_order)
    assert shipped["provider"] == "printful" and shipped["object"] == printful_order
    done = _wait_for(stack_env, order_id, {"shipped", "completed", "delivered"}, 60)
    assert done["status"] in ("RUNNING", "COMPLETED"), done

    # An event the stack has never seen for a made-up order is refused by the provider
    # (nothing half-done, a stable code, no traceback).
    refused = autobiz(
        stack_env, "sandbox", "trigger", "shipment_sent", "--order", "999999", "--json", check=False
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert json.loads(refused.stdout)["error"]["code"] == "INPUT_INVALID"
    assert "Traceback" not in refused.stderr
