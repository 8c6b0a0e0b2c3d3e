"""The day's numbers, pure: provider truth (Shopify orders, Stripe balance transactions,
Printful costs) into per-currency totals, the ``daily_metrics`` rows, the CSV report, and
the drift between our receipts and that truth. No I/O: the workflow calls these with
what its activities read, so a re-run of the day over the same truth writes the same
rows and the same bytes.

* **Stripe** balance transactions: ``charge`` (and ``payment``) are captures (gross
  ``amount``, ``fee``); ``refund`` (and ``payment_refund``) are refunds (``amount``
  negative); anything else (adjustments, disputes, payouts excluded) is ``other``. Fees
  are the sum of every transaction's ``fee``; net is the sum of ``net`` without payouts
  (a payout moves the balance, it is not the day's business).
* **Printful**: the ``costs.total`` of each billed order (confirmed onwards) behind the
  day's Shopify orders.
* **Margin** = net - fulfillment costs, in the currency both are in.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from kernel.money import minor_digits
from kernel.tools.printful import OrderCostsOutput
from kernel.tools.shopify import SearchOrdersOutput
from kernel.tools.stripe import ListBalanceTransactionsOutput, ListRefundsOutput
from workflows.closeout.models import CurrencyTotals, DayWindow, LedgerDay, MetricRow
from workflows.reconciliation.drift import outside_refunds
from workflows.reconciliation.models import Drift, PaymentView

CAPTURE_TYPES = frozenset({"charge", "payment"})
REFUND_TYPES = frozenset({"refund", "payment_refund"})
BALANCE_MOVES = frozenset({"payout", "payout_cancel", "payout_failure", "transfer", "topup"})
# The per-currency metrics, in the order the CSV lists them.
METRICS: tuple[str, ...] = (
    "orders",
    "orders_total_minor",
    "captures",
    "gross_captured_minor",
    "refunds",
    "refunded_minor",
    "stripe_fees_minor",
    "other_balance_minor",
    "net_minor",
    "fulfillment_orders",
    "fulfillment_costs_minor",
    "margin_minor",
)
COUNTS = frozenset({"orders", "captures", "refunds", "fulfillment_orders"})


def day_totals(
    orders: SearchOrdersOutput,
    balance: ListBalanceTransactionsOutput,
    costs: OrderCostsOutput,
) -> tuple[CurrencyTotals, ...]:
    """Per currency, sorted by currency code."""
    t: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    for o in orders.orders:
        t[o.currency]["orders"] += 1
        t[o.currency]["orders_total_minor"] += o.total_minor
    for x in balance.transactions:
        if x.type in BALANCE_MOVES:
            continue
        row = t[x.currency]
        if x.type in CAPTURE_TYPES:
            row["captures"] += 1
            row["gross_captured_minor"] += x.amount_minor
        elif x.type in REFUND_TYPES:
            row["refunds"] += 1
            row["refunded_minor"] += -x.amount_minor
        else:
            row["other_balance_minor"] += x.net_minor
        row["stripe_fees_minor"] += x.fee_minor
        row["net_minor"] += x.net_minor
    for c in costs.orders:
        if c.billed:
            t[c.currency]["fulfillment_orders"] += 1
            t[c.currency]["fulfillment_costs_minor"] += c.total_minor
    for row in t.values():
        row["margin_minor"] = row["net_minor"] - row["fulfillment_costs_minor"]
    return tuple(CurrencyTotals(currency=cur, **t[cur]) for cur in sorted(t))


def metric_rows(totals: tuple[CurrencyTotals, ...]) -> tuple[MetricRow, ...]:
    """Every metric of every currency: ``{name}:{currency}``, in minor units or a count."""
    rows: list[MetricRow] = []
    for cur in totals:
        values = cur.model_dump()
        for name in METRICS:
            rows.append(
                MetricRow(
                    metric=f"{name}:{cur.currency}",
                    value=Decimal(values[name]),
                    currency=None if name in COUNTS else cur.currency,
                )
            )
    return tuple(rows)


def _amount(minor: int, currency: str) -> str:
    """Minor units in major units with the currency's digits: ``1250 USD`` → ``12.50``."""
    digits = minor_digits(currency)
    return f"{Decimal(minor).scaleb(-digits):.{digits}f}"


def report_csv(
    window: DayWindow,
    timezone: str,
    totals: tuple[CurrencyTotals, ...],
    orders: SearchOrdersOutput,
    costs: OrderCostsOutput,
    drifts: list[Drift],
    order_keys: dict[str, str],
) -> str:
    """The day's CSV: a summary block (``section=summary``: one row per metric and
    currency, amounts in major units), one row per order (no customer data), one per
    drift. Deterministic for the same inputs (no generation time in it)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["section", "key", "currency", "value", "detail"])
    w.writerow(["day", window.day.isoformat(), "", timezone, ""])
    w.writerow(["window", window.start.isoformat(), "", window.end.isoformat(), "utc"])
    for cur in totals:
        values = cur.model_dump()
        for name in METRICS:
            shown = str(values[name]) if name in COUNTS else _amount(values[name], cur.currency)
            w.writerow(["summary", name.removesuffix("_minor"), cur.currency, shown, ""])
    by_external = {c.external_id: c for c in costs.orders}
    for o in sorted(orders.orders, key=lambda o: (o.created_at, o.order_id)):
        cost = by_external.get(order_keys.get(o.order_id, ""))
        detail = (
            f"printful {cost.status} {_amount(cost.total_minor, cost.currency)} {cost.currency}"
            if cost is not None
            else "printful none"
        )
        w.writerow(
            [
                "order",
                o.order_name,
                o.currency,
                _amount(o.total_minor, o.currency),
                f"{o.created_at.isoformat()} {o.financial_status} {detail}",
            ]
        )
    for d in drifts:
        w.writerow(["drift", d.kind, _drift_currency(d), d.entity_ref, d.action])
    return out.getvalue()


def _drift_currency(d: Drift) -> str:
    return str(d.actual.get("currency") or d.expected.get("currency") or "")


def receipt_drifts(
    window: DayWindow,
    totals: tuple[CurrencyTotals, ...],
    ledger: LedgerDay,
    refunds: ListRefundsOutput,
    tolerance_minor: int = 0,
) -> list[Drift]:
    """Our receipts against provider truth for the day.

    * ``refund_outside`` (the reconciliation's check, reused: same rows, so a refund
      found by both is asked about once): a live refund in the window on a payment we
      captured that no refund receipt of ours accounts for;
    * ``closeout_mismatch``: per currency, the day's captured or refunded total by
      Stripe's balance transactions differs from our receipts' (refunds already raised
      as ``refund_outside`` excepted) by more than ``tolerance_minor``.
    """
    drifts: list[Drift] = []
    outside_by_currency: dict[str, int] = defaultdict(int)
    by_pi: dict[str, list[Any]] = defaultdict(list)
    for r in refunds.refunds:
        if r.payment_intent_id:
            by_pi[r.payment_intent_id].append(r)
    for p in ledger.payments:
        view = PaymentView(
            payment_intent_id=p.payment_intent_id,
            order_id=p.order_id,
            captured_minor=p.captured_minor,
            currency=p.currency,
            accounted_refunds=p.accounted_refunds,
        )
        found = outside_refunds(view, ListRefundsOutput(refunds=by_pi.get(p.payment_intent_id, [])))
        for d in found:
            outside_by_currency[str(d.actual.get("currency"))] += int(
                d.actual.get("amount_minor") or 0
            )
        drifts.extend(found)
    currencies = sorted({t.currency for t in totals} | set(ledger.captured) | set(ledger.refunded))
    by_currency = {t.currency: t for t in totals}
    for cur in currencies:
        t = by_currency.get(cur, CurrencyTotals(currency=cur))
        checks = (
            ("captured", t.gross_captured_minor, ledger.captured.get(cur, 0)),
            (
                "refunded",
                t.refunded_minor,
                ledger.refunded.get(cur, 0) + outside_by_currency.get(cur, 0),
            ),
        )
        for what, provider, ours in checks:
            if abs(provider - ours) > tolerance_minor:
                drifts.append(
                    Drift(
                        kind="closeout_mismatch",
                        entity_ref=f"closeout:{window.day.isoformat()}:{what}:{cur}",
                        financial=True,
                        expected={
                            "source": "receipts",
                            "metric": what,
                            "amount_received_minor": ours,
                            "currency": cur,
                        },
                        actual={
                            "source": "stripe balance transactions",
                            "metric": what,
                            "amount_received_minor": provider,
                            "currency": cur,
                            "day": window.day.isoformat(),
                        },
                        action="acknowledge_required",
                    )
                )
    return drifts


def summary(totals: tuple[CurrencyTotals, ...]) -> dict[str, Any]:
    """The report row's ``summary`` and the email's figures: per currency, major units."""
    return {
        t.currency: {
            "orders": t.orders,
            "gross_captured": _amount(t.gross_captured_minor, t.currency),
            "refunded": _amount(t.refunded_minor, t.currency),
            "stripe_fees": _amount(t.stripe_fees_minor, t.currency),
            "net": _amount(t.net_minor, t.currency),
            "fulfillment_costs": _amount(t.fulfillment_costs_minor, t.currency),
            "margin": _amount(t.margin_minor, t.currency),
        }
        for t in totals
    }


def day_label(day: date) -> str:
    return day.isoformat()
