"""Stripe tools: capture, void and refund, each exactly once; read a PaymentIntent.

The idempotency key Stripe sees is the call's external key (``ctx.external_key``,
computed in the workflow), so an activity retry — even after Stripe committed and the
answer was lost — replays Stripe's first answer instead of moving money twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, Protocol, TypeVar

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import provider_errors, run_side_effect
from autobiz.db.database import Database
from autobiz.ledger.binding import BINDING_CODES, require_payment_binding
from autobiz.ledger.executor import ProviderResult, SideEffectRunner, verify_call
from autobiz.ledger.incidents import record_incident
from autobiz.providers.errors import InvalidRequest, NotFound
from autobiz.providers.stripe_client import (
    ORDER_KEY_METADATA,
    PROVIDER,
    BalanceTransactionInfo,
    PaymentIntentInfo,
    RefundInfo,
    StripePayments,
)
from autobiz.providers.tenant_clients import TenantClients
from kernel import tools
from kernel.contracts import CallContext
from kernel.redaction import redact_text
from kernel.refunds import PaymentStanding, RefundRefusal, refund_refusal
from kernel.tools.stripe import (
    BalanceTransactionView,
    CancelPaymentInput,
    CancelPaymentOutput,
    CapturePaymentInput,
    CapturePaymentOutput,
    CreateRefundInput,
    CreateRefundOutput,
    GetPaymentIntentInput,
    GetPaymentIntentOutput,
    ListBalanceTransactionsInput,
    ListBalanceTransactionsOutput,
    ListRefundsInput,
    ListRefundsOutput,
    RefundView,
)

FAILURE_MESSAGE_MAX = 300
STRIPE_PAGE = 100  # objects per page (Stripe's maximum)
OutT = TypeVar("OutT", bound=BaseModel)


class _Listed(Protocol):
    @property
    def id(self) -> str: ...


ListedT = TypeVar("ListedT", bound=_Listed)
# One page: (limit, starting_after) -> (the page's objects, has_more).
PageFetch = Callable[[int, str | None], Awaitable[tuple[list[ListedT], bool]]]


async def _walk_pages(fetch: PageFetch[ListedT], max_results: int) -> tuple[list[ListedT], bool]:
    """A Stripe list walked with ``starting_after`` up to ``max_results`` objects; True
    with them when more were left (the read is truncated)."""
    found: list[ListedT] = []
    after: str | None = None
    while True:
        items, has_more = await fetch(min(STRIPE_PAGE, max_results - len(found)), after)
        found.extend(items)
        if not has_more or not items:
            return found, False
        if len(found) >= max_results:
            return found, True
        after = items[-1].id


def _check_currency(pi: PaymentIntentInfo, currency: str) -> None:
    if pi.currency.upper() != currency:
        raise InvalidRequest(
            f"PaymentIntent {pi.id} is in {pi.currency.upper()}, not {currency}",
            provider=PROVIDER,
            provider_code="currency_mismatch",
        )


class StripeActivities:
    def __init__(self, clients: TenantClients, db: Database) -> None:
        self._clients = clients
        self._db = db
        self._runner = SideEffectRunner(db)

    async def _bound(self, ctx: CallContext, order_id: str, pi: PaymentIntentInfo) -> None:
        """The intent must be this tenant's and this order's (else an incident)."""
        await require_payment_binding(
            self._db,
            ctx.tenant_id,
            order_id,
            pi.id,
            pi.metadata,
            action=ctx.tool,
            actor=f"workflow:{ctx.workflow_id}",
        )

    async def _moved_intent(
        self,
        ctx: CallContext,
        order_id: str,
        payment_intent_id: str,
        *,
        done: str,
        move: Callable[[StripePayments], Awaitable[PaymentIntentInfo]],
        currency: str | None = None,
    ) -> PaymentIntentInfo:
        """The order's PaymentIntent, moved to ``done`` (captured, voided) by ``move``:
        looked up and bound to the order first (and checked to be in ``currency``); one
        already there (a move whose answer was lost) is not moved again."""
        stripe = await self._clients.stripe(ctx.tenant_id)
        pi = await stripe.retrieve_payment_intent(payment_intent_id)
        await self._bound(ctx, order_id, pi)
        if currency is not None:
            _check_currency(pi, currency)
        return pi if pi.status == done else await move(stripe)

    @activity.defn(name=tools.stripe.CAPTURE_PAYMENT.activity_name)
    async def capture_payment(
        self, ctx: CallContext, input: CapturePaymentInput
    ) -> CapturePaymentOutput:
        def capture(stripe: StripePayments) -> Awaitable[PaymentIntentInfo]:
            return stripe.capture_payment_intent(
                input.payment_intent_id,
                idempotency_key=ctx.external_key,
                amount_to_capture=input.amount_minor,
            )

        async def execute() -> ProviderResult[CapturePaymentOutput]:
            pi = await self._moved_intent(
                ctx,
                input.order_id,
                input.payment_intent_id,
                done="succeeded",
                move=capture,
                currency=input.currency,
            )
            out = CapturePaymentOutput(
                payment_intent_id=pi.id,
                status=pi.status,
                amount_captured_minor=pi.amount_received,
                currency=pi.currency.upper(),
            )
            details = {"order_id": input.order_id, "risk_level": input.risk_level}
            return _intent_receipt(out, pi, pi.amount_received, out.currency, details)

        return await run_side_effect(self._runner, ctx, input, CapturePaymentOutput, execute)

    @activity.defn(name=tools.stripe.CANCEL_PAYMENT.activity_name)
    async def cancel_payment(
        self, ctx: CallContext, input: CancelPaymentInput
    ) -> CancelPaymentOutput:
        def void(stripe: StripePayments) -> Awaitable[PaymentIntentInfo]:
            return stripe.cancel_payment_intent(
                input.payment_intent_id, idempotency_key=ctx.external_key, reason=input.reason
            )

        async def execute() -> ProviderResult[CancelPaymentOutput]:
            pi = await self._moved_intent(
                ctx, input.order_id, input.payment_intent_id, done="canceled", move=void
            )
            out = CancelPaymentOutput(payment_intent_id=pi.id, status=pi.status)
            details = {"order_id": input.order_id, "reason": input.reason}
            return _intent_receipt(out, pi, input.amount_minor, input.currency, details)

        return await run_side_effect(self._runner, ctx, input, CancelPaymentOutput, execute)

    @activity.defn(name=tools.stripe.GET_PAYMENT_INTENT.activity_name)
    async def get_payment_intent(
        self, ctx: CallContext, input: GetPaymentIntentInput
    ) -> GetPaymentIntentOutput:
        """A read: no receipt. ``amount_refunded_minor`` is the latest charge's (what a
        refund may still take is received minus refunded). The decline message is
        Stripe's text for the customer's bank answer; it is redacted and cut short before
        it reaches history."""
        with provider_errors():
            verify_call(ctx, input)
            stripe = await self._clients.stripe(ctx.tenant_id)
            pi = await stripe.retrieve_payment_intent(input.payment_intent_id)
            refunded = 0
            if pi.latest_charge and pi.amount_received > 0:
                refunded = (await stripe.retrieve_charge(pi.latest_charge)).amount_refunded
        error = pi.last_payment_error
        message = (
            redact_text(error.message)[:FAILURE_MESSAGE_MAX] if error and error.message else None
        )
        return GetPaymentIntentOutput(
            id=pi.id,
            status=pi.status,
            amount_minor=pi.amount,
            amount_received_minor=pi.amount_received,
            amount_capturable_minor=pi.amount_capturable,
            amount_refunded_minor=refunded,
            currency=pi.currency.upper(),
            decline_code=error.decline_code if error else None,
            failure_code=error.code if error else None,
            failure_message=message,
            order_key=pi.metadata.get(ORDER_KEY_METADATA),
        )

    @activity.defn(name=tools.stripe.CREATE_REFUND.activity_name)
    async def create_refund(self, ctx: CallContext, input: CreateRefundInput) -> CreateRefundOutput:
        """Refund once per identity, and only what the order may get back.

        First the refund this call already made, found by its identity in the
        PaymentIntent's refunds (our idempotency window and Stripe's 24 h key both
        expire; the identity does not); then, with none, Stripe's truth right before
        the money moves: the PaymentIntent is this tenant's order's, in this currency,
        with at least this much captured and not yet refunded. A refusal is
        non-retryable with a stable code (``kernel.refunds``) and nothing moved."""

        async def execute() -> ProviderResult[CreateRefundOutput]:
            stripe = await self._clients.stripe(ctx.tenant_id)
            refund = await self._refund_once(stripe, ctx, input)
            if refund.currency.upper() != input.currency:
                raise InvalidRequest(
                    f"refund {refund.id} is in {refund.currency.upper()}, not {input.currency}",
                    provider=PROVIDER,
                    provider_code="currency_mismatch",
                )
            return _refund_receipt(refund, input)

        return await run_side_effect(self._runner, ctx, input, CreateRefundOutput, execute)

    async def _refund_once(
        self, stripe: StripePayments, ctx: CallContext, input: CreateRefundInput
    ) -> RefundInfo:
        """The refund this call's identity already made, else a new one, once Stripe's
        standing of the payment allows it."""
        try:
            refund = await _existing_refund(stripe, ctx, input)
            standing = None if refund else await payment_standing(stripe, input.payment_intent_id)
        except NotFound:  # not this account's PaymentIntent (or none at all)
            refund, standing = None, None
        if refund is not None:
            return refund
        problem = refund_refusal(
            tenant_id=ctx.tenant_id,
            order_id=input.order_id,
            payment_intent_id=input.payment_intent_id,
            amount_minor=input.amount_minor,
            currency=input.currency,
            standing=standing,
            source="Stripe",
        )
        if problem is not None:
            await self._refused(ctx, input, problem)
        return await stripe.create_refund(
            payment_intent_id=input.payment_intent_id,
            idempotency_key=ctx.external_key,
            amount=input.amount_minor,
            reason=input.reason,
            metadata=_refund_metadata(ctx, input),
        )

    async def _refused(
        self, ctx: CallContext, input: CreateRefundInput, problem: RefundRefusal
    ) -> NoReturn:
        """Refuse the refund; another order's or tenant's money is also an incident."""
        if problem.code in BINDING_CODES:
            await record_incident(
                self._db,
                ctx.tenant_id,
                code=problem.code,
                actor=f"workflow:{ctx.workflow_id}",
                detail={
                    "action": ctx.tool,
                    "order_id": input.order_id,
                    "payment_intent": input.payment_intent_id,
                    "message": problem.message,
                },
            )
        raise refusal_error(problem)

    # -- reads for reconciliation -----------------------------------------------------

    @activity.defn(name=tools.stripe.LIST_REFUNDS.activity_name)
    async def list_refunds(self, ctx: CallContext, input: ListRefundsInput) -> ListRefundsOutput:
        """A read (no receipt); pages walked up to ``max_results``."""
        with provider_errors():
            verify_call(ctx, input)
            stripe = await self._clients.stripe(ctx.tenant_id)

            async def fetch(limit: int, after: str | None) -> tuple[list[RefundInfo], bool]:
                page = await stripe.list_refunds(
                    payment_intent_id=input.payment_intent_id,
                    created_gte=input.created_gte,
                    created_lte=input.created_lte,
                    limit=limit,
                    starting_after=after,
                )
                return page.refunds, page.has_more

            found, truncated = await _walk_pages(fetch, input.max_results)
        return ListRefundsOutput(refunds=[_refund_view(r) for r in found], truncated=truncated)

    @activity.defn(name=tools.stripe.LIST_BALANCE_TRANSACTIONS.activity_name)
    async def list_balance_transactions(
        self, ctx: CallContext, input: ListBalanceTransactionsInput
    ) -> ListBalanceTransactionsOutput:
        """A read (no receipt); pages walked up to ``max_results``."""
        with provider_errors():
            verify_call(ctx, input)
            stripe = await self._clients.stripe(ctx.tenant_id)

            async def fetch(
                limit: int, after: str | None
            ) -> tuple[list[BalanceTransactionInfo], bool]:
                page = await stripe.list_balance_transactions(
                    created_gte=input.created_gte,
                    created_lt=input.created_lt,
                    limit=limit,
                    starting_after=after,
                )
                return page.transactions, page.has_more

            found, truncated = await _walk_pages(fetch, input.max_results)
        return ListBalanceTransactionsOutput(
            transactions=[_balance_view(t) for t in found], truncated=truncated
        )


def _balance_view(t: BalanceTransactionInfo) -> BalanceTransactionView:
    return BalanceTransactionView(
        txn_id=t.id,
        type=t.type,
        amount_minor=t.amount,
        fee_minor=t.fee,
        net_minor=t.net,
        currency=t.currency.upper(),
        source=t.source,
        created=t.created,
    )


# Metadata our refunds carry: the order, the request, and the call's external key.
REFUND_KEY_METADATA = "autobiz_key"
_LIVE_REFUND = frozenset({"succeeded", "pending", "requires_action"})


def _refund_metadata(ctx: CallContext, input: CreateRefundInput) -> dict[str, str]:
    return {
        "order_id": input.order_id,
        "refund_request_id": input.refund_request_id,
        REFUND_KEY_METADATA: ctx.external_key,
    }


async def _existing_refund(
    stripe: StripePayments, ctx: CallContext, input: CreateRefundInput
) -> RefundInfo | None:
    """The refund this call's identity already made, if any: one carrying our external
    key, else (refunds made before the key was recorded) the same request id, order
    and amount. Failed and canceled refunds gave nothing back and do not count."""
    refunds = [
        r
        for r in await stripe.refunds_of(input.payment_intent_id)
        if (r.status or "pending") in _LIVE_REFUND
    ]
    for refund in refunds:
        if refund.metadata.get(REFUND_KEY_METADATA) == ctx.external_key:
            return refund
    for refund in refunds:
        meta = refund.metadata
        if (
            meta.get("refund_request_id") == input.refund_request_id
            and meta.get("order_id") == input.order_id
            and REFUND_KEY_METADATA not in meta
            and refund.amount == input.amount_minor
        ):
            return refund
    return None


async def payment_standing(stripe: StripePayments, payment_intent_id: str) -> PaymentStanding:
    """Stripe's truth about a payment: its owner binding, and what its latest charge
    captured and has refunded (no charge: what the PaymentIntent received, none refunded)."""
    pi = await stripe.retrieve_payment_intent(payment_intent_id)
    captured, refunded = pi.amount_received, 0
    if pi.latest_charge:
        charge = await stripe.retrieve_charge(pi.latest_charge)
        captured, refunded = charge.amount_captured, charge.amount_refunded
    return PaymentStanding(
        payment_intent_id=pi.id,
        currency=pi.currency.upper(),
        captured_minor=captured,
        refunded_minor=refunded,
        order_key=pi.metadata.get(ORDER_KEY_METADATA),
    )


def refusal_error(problem: RefundRefusal) -> ApplicationError:
    """A refused refund: non-retryable, typed by its stable code; nothing moved."""
    return ApplicationError(
        f"{problem.message} ({problem.hint})",
        {"code": problem.code, "hint": problem.hint},
        type=problem.code,
        non_retryable=True,
    )


def _refund_view(r: RefundInfo) -> RefundView:
    return RefundView(
        refund_id=r.id,
        payment_intent_id=r.payment_intent,
        amount_minor=r.amount,
        currency=r.currency.upper(),
        status=r.status or "pending",
        reason=r.reason,
        created=r.created,
        order_id=r.metadata.get("order_id"),
        refund_request_id=r.metadata.get("refund_request_id"),
    )


def _intent_receipt(
    out: OutT, pi: PaymentIntentInfo, amount_minor: int, currency: str, details: dict[str, Any]
) -> ProviderResult[OutT]:
    """The receipt of a PaymentIntent's capture or void: the intent as it now stands."""
    return ProviderResult(
        output=out,
        provider_object_id=pi.id,
        status=pi.status,
        amount_minor=amount_minor,
        currency=currency,
        details=details,
    )


def _refund_receipt(
    refund: RefundInfo, input: CreateRefundInput
) -> ProviderResult[CreateRefundOutput]:
    out = CreateRefundOutput(
        refund_id=refund.id,
        status=refund.status or "pending",
        amount_minor=refund.amount,
        currency=refund.currency.upper(),
    )
    return ProviderResult(
        output=out,
        provider_object_id=refund.id,
        status=out.status,
        amount_minor=refund.amount,
        currency=out.currency,
        details={
            "order_id": input.order_id,
            "refund_request_id": input.refund_request_id,
            "payment_intent_id": input.payment_intent_id,
        },
    )
