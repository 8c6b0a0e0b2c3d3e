"""The money invariants of a refund, as one pure check used twice (issue 10 §4).

The starter runs it on our ledger (the order's capture receipt and the receipts of
earlier refunds) before anything is started; the ``stripe.create_refund`` activity runs
it again on Stripe's answer (the PaymentIntent's ``order_key`` metadata, its latest
charge's captured and refunded amounts) right before it asks Stripe for money. Either
refuses with the same stable codes:

- ``PAYMENT_UNKNOWN``: nothing is known about the order's payment (no capture).
- ``PAYMENT_NOT_FOR_ORDER``: the PaymentIntent is another order's (or names none).
- ``CURRENCY_MISMATCH``: the refund is not in the payment's currency.
- ``AMOUNT_INVALID``: not positive, or more minor digits than the currency has.
- ``REFUND_EXCEEDS_REFUNDABLE``: above captured minus already refunded.

Pure: no I/O, no clock; safe in workflow code.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernel import money
from kernel.codes import ErrorCode

# The codes a refund is refused with (a refused Stripe refund's ``ApplicationError.type``).
REFUSAL_CODES = frozenset(
    {
        ErrorCode.PAYMENT_UNKNOWN,
        ErrorCode.PAYMENT_NOT_FOR_ORDER,
        ErrorCode.CURRENCY_MISMATCH,
        ErrorCode.AMOUNT_INVALID,
        ErrorCode.REFUND_EXCEEDS_REFUNDABLE,
    }
)


def order_key(tenant_id: str, order_id: str) -> str:
    """The owner binding a PaymentIntent carries in its ``order_key`` metadata."""
    return f"{tenant_id}:{order_id}"


@dataclass(frozen=True)
class PaymentStanding:
    """What a source of truth (our ledger, or Stripe) says about one payment."""

    payment_intent_id: str
    currency: str  # upper case
    captured_minor: int
    refunded_minor: int
    # Stripe: the ``order_key`` metadata. The ledger: the order the capture was for,
    # as the same ``{tenant}:{order}`` key.
    order_key: str | None

    @property
    def refundable_minor(self) -> int:
        return max(self.captured_minor - self.refunded_minor, 0)


@dataclass(frozen=True)
class RefundRefusal:
    code: ErrorCode
    message: str
    hint: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def amount_refusal(amount_minor: int, currency: str) -> RefundRefusal | None:
    """A positive amount in a currency we know (minor units cannot carry extra digits)."""
    try:
        money.minor_digits(currency)
    except money.MoneyError as exc:
        return RefundRefusal(exc.code, exc.message, exc.hint or "")
    if amount_minor <= 0:
        return RefundRefusal(
            ErrorCode.AMOUNT_INVALID,
            f"the refund amount {money.format_money(amount_minor, currency)} is not above zero",
            money.amount_hint(currency),
        )
    return None


def refund_refusal(
    *,
    tenant_id: str,
    order_id: str,
    payment_intent_id: str,
    amount_minor: int,
    currency: str,
    standing: PaymentStanding | None,
    source: str,
) -> RefundRefusal | None:
    """Why this refund must not happen, or None. ``source`` names the truth in messages
    ("our ledger", "Stripe")."""
    bad_amount = amount_refusal(amount_minor, currency)
    if bad_amount is not None:
        return bad_amount
    if standing is None:
        return RefundRefusal(
            ErrorCode.PAYMENT_UNKNOWN,
            f"{source} has no captured payment for order {order_id} of {tenant_id}, so "
            f"{payment_intent_id} cannot be shown to be this order's",
            "refund only an order whose flow captured its payment; see `autobiz order "
            f"status {order_id}`",
        )
    not_its_payment = _not_the_orders_payment(
        tenant_id, order_id, payment_intent_id, standing, source
    )
    if not_its_payment is not None:
        return not_its_payment
    if standing.currency != currency:
        return RefundRefusal(
            ErrorCode.CURRENCY_MISMATCH,
            f"the refund is in {currency} but {payment_intent_id} was captured in "
            f"{standing.currency}",
            f"refund in {standing.currency} (omit --currency to use the capture's)",
        )
    if amount_minor > standing.refundable_minor:
        fmt = money.format_money
        return RefundRefusal(
            ErrorCode.REFUND_EXCEEDS_REFUNDABLE,
            f"{fmt(amount_minor, currency)} exceeds what is refundable on {payment_intent_id}: "
            f"captured {fmt(standing.captured_minor, currency)} - already refunded "
            f"{fmt(standing.refunded_minor, currency)} = "
            f"{fmt(standing.refundable_minor, currency)} ({source})",
            f"refund at most {fmt(standing.refundable_minor, currency)}",
        )
    return None


def _not_the_orders_payment(
    tenant_id: str,
    order_id: str,
    payment_intent_id: str,
    standing: PaymentStanding,
    source: str,
) -> RefundRefusal | None:
    """PAYMENT_NOT_FOR_ORDER unless ``payment_intent_id`` is the payment ``standing``
    holds and that payment is bound to this order."""
    expected = order_key(tenant_id, order_id)
    bound_to = (standing.order_key or "").removeprefix("order:")  # either spelling
    if standing.payment_intent_id == payment_intent_id and bound_to == expected:
        return None
    owner = standing.order_key or "no order"
    whose = (
        f"order {order_id}'s payment is {standing.payment_intent_id}"
        if standing.payment_intent_id != payment_intent_id
        else f"{payment_intent_id} belongs to {owner}"
    )
    return RefundRefusal(
        ErrorCode.PAYMENT_NOT_FOR_ORDER,
        f"PaymentIntent {payment_intent_id} is not order {order_id}'s ({source}: {whose})",
        "omit --payment-intent to refund the payment the order's flow captured",
    )
