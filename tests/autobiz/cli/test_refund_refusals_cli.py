"""`autobiz refund request` refuses, before anything is started, a refund our ledger
shows must not happen (issue 10 §4, first line): another order's PaymentIntent, more
than captured minus already refunded, another currency, a payment the ledger has never
seen, a non-positive or over-precise amount. Each exits non-zero with ``error[CODE]``,
says why with the amounts in the currency, starts no workflow and moves no money."""

from __future__ import annotations

import uuid

import pytest
from temporalio.service import RPCError, RPCStatusCode

from tests.autobiz.cli.support import Cli, CliResult
from tests.workflows.support import Harness

pytestmark = pytest.mark.e2e

REFUSED = 3  # autobiz.errors.ExitCode.REFUSED
USAGE = 2


async def _request(cli: Cli, order_id: str, *args: str) -> tuple[CliResult, str]:
    rid = f"rr-{uuid.uuid4().hex[:12]}"
    out = await cli("refund", "request", order_id, "--request-id", rid, *args, check=False)
    return out, rid


async def _never_started(h: Harness, rid: str) -> None:
    with pytest.raises(RPCError) as missing:
        await h.client.get_workflow_handle(f"refund:{h.tenant}:{rid}").describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND


async def _refunded(h: Harness, pi: str) -> int:
    return sum(
        r.amount for r in (await h.clients.stripe.list_refunds(payment_intent_id=pi)).refunds
    )


async def test_another_orders_payment_is_refused_before_start(harness: Harness, cli: Cli) -> None:
    h = harness
    order_a, _ = await h.captured_order(in_ledger=True)
    order_b, pi_b = await h.captured_order(in_ledger=True)
    out, rid = await _request(cli, order_a, "--amount", "20.00", "--payment-intent", pi_b)
    assert out.refused("PAYMENT_NOT_FOR_ORDER"), out.stderr
    assert out.code == REFUSED
    assert f"paid for order {order_b}" in out.stderr and pi_b in out.stderr
    await _never_started(h, rid)
    assert await _refunded(h, pi_b) == 0


async def test_above_captured_minus_refunded_is_refused_before_start(
    harness: Harness, cli: Cli
) -> None:
    h = harness
    order_id, pi = await h.captured_order(in_ledger=True)
    first = await cli("refund", "request", order_id, "--amount", "30.00", "--wait", "--json")
    assert first.json()["result"]["state"] == "refunded"
    # 100.00 captured - 30.00 refunded (our receipt) = 70.00 left; the order total is 100.00.
    out, rid = await _request(cli, order_id, "--amount", "80.00")
    assert out.refused("REFUND_EXCEEDS_REFUNDABLE"), out.stderr
    assert out.code == REFUSED
    for shown in ("80.00 USD", "100.00 USD", "30.00 USD", "70.00 USD"):
        assert shown in out.stderr
    await _never_started(h, rid)
    assert await _refunded(h, pi) == 3000
    ok = await cli("refund", "request", order_id, "--amount", "20.00", "--wait", "--json")
    assert ok.json()["result"]["state"] == "refunded" and await _refunded(h, pi) == 5000


async def test_other_currency_is_refused_before_start(harness: Harness, cli: Cli) -> None:
    h = harness
    order_id, pi = await h.captured_order(in_ledger=True)
    out, rid = await _request(cli, order_id, "--amount", "20.00", "--currency", "EUR")
    assert out.refused("CURRENCY_MISMATCH"), out.stderr
    assert out.code == REFUSED and "USD" in out.stderr and "EUR" in out.stderr
    await _never_started(h, rid)
    assert await _refunded(h, pi) == 0


async def test_payment_the_ledger_never_saw_is_refused_before_start(
    harness: Harness, cli: Cli
) -> None:
    """Captured in Stripe but unknown to our ledger: refused rather than guessed at."""
    h = harness
    order_id, pi = await h.captured_order("100.00")
    out, rid = await _request(cli, order_id, "--amount", "20.00", "--payment-intent", pi)
    assert out.refused("PAYMENT_UNKNOWN"), out.stderr
    await _never_started(h, rid)
    assert await _refunded(h, pi) == 0


@pytest.mark.parametrize("amount", ["0", "0.00", "-5", "20.001"])
async def test_bad_amounts_are_refused_before_start(
    harness: Harness, cli: Cli, amount: str
) -> None:
    h = harness
    order_id, pi = await h.captured_order(in_ledger=True)
    out, rid = await _request(cli, order_id, "--amount", amount)
    assert out.refused("AMOUNT_INVALID") or out.refused("USAGE"), out.stderr
    assert out.code == USAGE
    await _never_started(h, rid)
    assert await _refunded(h, pi) == 0
