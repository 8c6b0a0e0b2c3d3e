"""The closeout's pure parts: the tenant-local day's UTC window across DST, the day's
totals from provider truth, the CSV (deterministic), the drift against receipts, and the
report links' signatures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from autobiz.closeout_links import ReportLinks
from autobiz.settings import Settings
from kernel.tools.printful import OrderCostsOutput, PrintfulOrderCosts
from kernel.tools.shopify import OrderSummary, SearchOrdersOutput
from kernel.tools.stripe import (
    BalanceTransactionView,
    ListBalanceTransactionsOutput,
    ListRefundsOutput,
    RefundView,
)
from workflows.closeout.metrics import day_totals, metric_rows, receipt_drifts, report_csv
from workflows.closeout.models import (
    DayWindow,
    LedgerDay,
    LedgerPayment,
    day_window,
    last_ended_day,
)

pytestmark = pytest.mark.unit

NY = "America/New_York"


def test_the_day_window_follows_dst() -> None:
    assert day_window(date(2026, 3, 8), NY) == (
        datetime(2026, 3, 8, 5, tzinfo=UTC),
        datetime(2026, 3, 9, 4, tzinfo=UTC),  # 23 hours: clocks go forward
    )
    start, end = day_window(date(2026, 11, 1), NY)
    assert end - start == timedelta(hours=25)
    assert day_window(date(2026, 7, 1), "UTC") == (
        datetime(2026, 7, 1, tzinfo=UTC),
        datetime(2026, 7, 2, tzinfo=UTC),
    )
    # 00:10 in New York on 2 Dec is 05:10 UTC: the day that ended is 1 Dec.
    assert last_ended_day(datetime(2026, 12, 2, 5, 10, tzinfo=UTC), NY) == date(2026, 12, 1)
    assert last_ended_day(datetime(2026, 12, 2, 4, 59, tzinfo=UTC), NY) == date(2026, 11, 30)


def _txn(kind: str, amount: int, fee: int = 0, source: str = "ch_1") -> BalanceTransactionView:
    return BalanceTransactionView(
        txn_id=f"txn_{kind}_{amount}",
        type=kind,
        amount_minor=amount,
        fee_minor=fee,
        net_minor=amount - fee,
        currency="USD",
        source=source,
        created=1_800_000_000,
    )


ORDERS = SearchOrdersOutput(
    orders=[
        OrderSummary(
            order_id="1001",
            order_name="#1001",
            customer_email="ada@example.com",
            created_at=datetime(2026, 12, 1, 15, tzinfo=UTC),
            financial_status="PAID",
            total_minor=2500,
            currency="USD",
        )
    ],
    count=1,
)
BALANCE = ListBalanceTransactionsOutput(
    transactions=[
        _txn("charge", 2500, 103),
        _txn("refund", -1000, 0, "re_1"),
        _txn("payout", -5000),
        _txn("adjustment", -50, 0, "du_1"),
    ]
)
COSTS = OrderCostsOutput(
    orders=[
        PrintfulOrderCosts(
            external_id="1001-abc",
            printful_order_id=1,
            status="fulfilled",
            billed=True,
            calculation_status="done",
            currency="USD",
            subtotal_minor=1250,
            shipping_minor=499,
            total_minor=1749,
        ),
        PrintfulOrderCosts(
            external_id="1002-abc",
            printful_order_id=2,
            status="canceled",
            billed=False,
            calculation_status="done",
            currency="USD",
            total_minor=1749,
        ),
    ]
)


def test_totals_come_from_provider_truth() -> None:
    (usd,) = day_totals(ORDERS, BALANCE, COSTS)
    assert (usd.orders, usd.gross_captured_minor, usd.refunded_minor) == (1, 2500, 1000)
    assert (usd.stripe_fees_minor, usd.other_balance_minor) == (103, -50)
    assert usd.net_minor == 2500 - 103 - 1000 - 50  # the payout is not the day's business
    assert (usd.fulfillment_orders, usd.fulfillment_costs_minor) == (1, 1749)
    assert usd.margin_minor == usd.net_minor - 1749
    rows = {r.metric: r for r in metric_rows((usd,))}
    assert rows["orders:USD"].currency is None and rows["net_minor:USD"].currency == "USD"


def test_the_csv_is_deterministic_and_has_no_customer_data() -> None:
    totals = day_totals(ORDERS, BALANCE, COSTS)
    window = DayWindow.of(date(2026, 12, 1), NY)
    keys = {"1001": "1001-abc"}
    one = report_csv(window, NY, totals, ORDERS, COSTS, [], keys)
    assert one == report_csv(window, NY, totals, ORDERS, COSTS, [], keys)
    assert "summary,gross_captured,USD,25.00," in one and "summary,orders,USD,1," in one
    assert "order,#1001,USD,25.00," in one and "printful fulfilled 17.49 USD" in one
    assert "ada@example.com" not in one


def _refund(refund_id: str, pi: str, amount: int) -> RefundView:
    return RefundView(
        refund_id=refund_id,
        payment_intent_id=pi,
        amount_minor=amount,
        currency="USD",
        status="succeeded",
        created=1_800_000_000,
    )


def test_drift_against_receipts() -> None:
    window = DayWindow.of(date(2026, 12, 1), NY)
    totals = day_totals(ORDERS, BALANCE, COSTS)
    refunds = ListRefundsOutput(refunds=[_refund("re_1", "pi_1", 1000)])
    ours = LedgerDay(
        captured={"USD": 2500},
        refunded={"USD": 1000},
        payments=(
            LedgerPayment(
                payment_intent_id="pi_1",
                order_id="1001",
                captured_minor=2500,
                currency="USD",
                accounted_refunds=("re_1",),
            ),
        ),
    )
    assert receipt_drifts(window, totals, ours, refunds) == []
    # The same refund with no receipt: one refund_outside, not a mismatch as well.
    outside = ours.model_copy(
        update={
            "refunded": {},
            "payments": (ours.payments[0].model_copy(update={"accounted_refunds": ()}),),
        }
    )
    (drift,) = receipt_drifts(window, totals, outside, refunds)
    assert (drift.kind, drift.entity_ref, drift.order_id) == ("refund_outside", "re_1", "1001")
    # A capture Stripe shows that no receipt records: closeout_mismatch (within tolerance: none).
    missing = ours.model_copy(update={"captured": {"USD": 2000}})
    (mismatch,) = receipt_drifts(window, totals, missing, refunds)
    assert mismatch.kind == "closeout_mismatch"
    assert mismatch.entity_ref == "closeout:2026-12-01:captured:USD"
    assert receipt_drifts(window, totals, missing, refunds, tolerance_minor=500) == []


def test_report_links_are_bound_to_tenant_day_and_expiry() -> None:
    links = ReportLinks.from_settings(Settings())
    now = datetime(2026, 12, 2, 6, tzinfo=UTC)
    url, expires_at = links.url("demo-shop", date(2026, 12, 1), timedelta(days=7), now=now)
    assert expires_at == now + timedelta(days=7)
    assert "/reports/closeout/demo-shop/2026-12-01.csv?expires=" in url
    expires = int(expires_at.timestamp())
    sig = url.rsplit("sig=", 1)[1]
    assert links.check("demo-shop", date(2026, 12, 1), expires, sig, now=now) is None
    assert links.check("corner-shop", date(2026, 12, 1), expires, sig, now=now) == "bad_signature"
    assert links.check("demo-shop", date(2026, 12, 2), expires, sig, now=now) == "bad_signature"
    assert links.check("demo-shop", date(2026, 12, 1), expires + 1, sig, now=now) == "bad_signature"
    later = now + timedelta(days=8)
    assert links.check("demo-shop", date(2026, 12, 1), expires, sig, now=later) == "expired"


def test_links_use_the_public_address_when_there_is_one() -> None:
    settings = Settings()
    public = settings.model_copy(
        update={
            "ingress": settings.ingress.model_copy(
                update={"public_url": "https://ops.example.com/"}
            )
        }
    )
    url, _ = ReportLinks.from_settings(public).url("demo-shop", date(2026, 12, 1), timedelta(1))
    assert url.startswith("https://ops.example.com/reports/closeout/demo-shop/2026-12-01.csv?")
    local, _ = ReportLinks.from_settings(settings).url("demo-shop", date(2026, 12, 1), timedelta(1))
    assert local.startswith(f"http://{settings.ingress.host}:{settings.ingress.port}/reports/")


def test_a_full_batch_of_cost_reads_fits_its_timeout_at_printfuls_rate() -> None:
    """The closeout reads one Printful order per request, in batches of COSTS_BATCH per
    activity, paced by the shared limiter at Printful's published rate: the activity's
    timeout must outlast a full batch (at 30 s it timed out past ~55 orders a day)."""
    from kernel.tools.printful import GET_ORDER_COSTS
    from workflows.closeout.daily_closeout import COSTS_BATCH

    limits = Settings().rate_limit
    assert limits.printful_per_minute is not None
    per_second = limits.printful_per_minute / 60 * (1 - limits.headroom)
    needed = COSTS_BATCH / per_second
    assert GET_ORDER_COSTS.timeout.total_seconds() >= 1.5 * needed
