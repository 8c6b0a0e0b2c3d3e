"""Stripe tools: capture, void and refund, each exactly once; read a PaymentIntent.

The idempotency key Stripe sees is the call's external key (``ctx.external_key``,
computed in the workflow), so an activity retry — even after Stripe committed and the
answer was lost — replays Stripe's first answer instead of moving money twice.
"""

from __future__ import annotations

from temporalio import activity

from activities.errors import provider_errors, run_side_effect
from autobiz.db.database import Database
from autobiz.ledger.executor import ProviderResult, SideEffectRunner, verify_call
from autobiz.providers.errors import InvalidRequest
from autobiz.providers.stripe_client import (
    ORDER_KEY_METADATA,
    PROVIDER,
    PaymentIntentInfo,
)
from autobiz.providers.tenant_clients import TenantClients
from kernel.catalog import (
    STRIPE_CANCEL_PAYMENT,
    STRIPE_CAPTURE_PAYMENT,
    STRIPE_CREATE_REFUND,
    STRIPE_GET_PAYMENT_INTENT,
    CancelPaymentInput,
    CancelPaymentOutput,
    CapturePaymentInput,
    CapturePaymentOutput,
    CreateRefundInput,
    CreateRefundOutput,
    GetPaymentIntentInput,
    GetPaymentIntentOutput,
)
from kernel.contracts import CallContext
from kernel.redaction import redact_text

FAILURE_MESSAGE_MAX = 300


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
        self._runner = SideEffectRunner(db)

    @activity.defn(name=STRIPE_CAPTURE_PAYMENT.activity_name)
    async def capture_payment(
        self, ctx: CallContext, input: CapturePaymentInput
    ) -> CapturePaymentOutput:
        async def execute() -> ProviderResult[CapturePaymentOutput]:
            stripe = await self._clients.stripe(ctx.tenant_id)
            pi = await stripe.retrieve_payment_intent(input.payment_intent_id)
            _check_currency(pi, input.currency)
            if pi.status != "succeeded":
                pi = await stripe.capture_payment_intent(
                    input.payment_intent_id,
                    idempotency_key=ctx.external_key,
                    amount_to_capture=input.amount_minor,
                )
            out = CapturePaymentOutput(
                payment_intent_id=pi.id,
                status=pi.status,
                amount_captured_minor=pi.amount_received,
                currency=pi.currency.upper(),
            )
            return ProviderResult(
                output=out, provider_object_id=pi.id, status=pi.status,
                amount_minor=pi.amount_received, currency=out.currency,
                details={"order_id": input.order_id, "risk_level": input.risk_level},
            )  # fmt: skip

        return await run_side_effect(self._runner, ctx, input, CapturePaymentOutput, execute)

    @activity.defn(name=STRIPE_CANCEL_PAYMENT.activity_name)
    async def cancel_payment(
        self, ctx: CallContext, input: CancelPaymentInput
    ) -> CancelPaymentOutput:
        async def execute() -> ProviderResult[CancelPaymentOutput]:
            stripe = await self._clients.stripe(ctx.tenant_id)
            pi = await stripe.retrieve_payment_intent(input.payment_intent_id)
            if pi.status != "canceled":
                pi = await stripe.cancel_payment_intent(
                    input.payment_intent_id, idempotency_key=ctx.external_key, reason=input.reason
                )
            out = CancelPaymentOutput(payment_intent_id=pi.id, status=pi.status)
            return ProviderResult(
                output=out, provider_object_id=pi.id, status=pi.status,
                amount_minor=input.amount_minor, currency=input.currency,
                details={"order_id": input.order_id, "reason": input.reason},
            )  # fmt: skip

        return await run_side_effect(self._runner, ctx, input, CancelPaymentOutput, execute)

    @activity.defn(name=STRIPE_GET_PAYMENT_INTENT.activity_name)
    async def get_payment_intent(
        self, ctx: CallContext, input: GetPaymentIntentInput
    ) -> GetPaymentIntentOutput:
        """A read: no receipt. The decline message is Stripe's text for the customer's
        bank answer; it is redacted and cut short before it reaches history."""
        with provider_errors():
            verify_call(ctx, input)
            stripe = await self._clients.stripe(ctx.tenant_id)
            pi = await stripe.retrieve_payment_intent(input.payment_intent_id)
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
            currency=pi.currency.upper(),
            decline_code=error.decline_code if error else None,
            failure_code=error.code if error else None,
            failure_message=message,
            order_key=pi.metadata.get(ORDER_KEY_METADATA),
        )

    @activity.defn(name=STRIPE_CREATE_REFUND.activity_name)
    async def create_refund(self, ctx: CallContext, input: CreateRefundInput) -> CreateRefundOutput:
        async def execute() -> ProviderResult[CreateRefundOutput]:
            stripe = await self._clients.stripe(ctx.tenant_id)
            refund = await stripe.create_refund(payment_intent_id=input.payment_intent_id,
                idempotency_key=ctx.external_key,
                amount=input.amount_minor,
                reason=input.reason,
                metadata={"order_id": input.order_id,
                          "refund_request_id": input.refund_request_id},
            )  # fmt: skip
            if refund.currency.upper() != input.currency:
                raise InvalidRequest(
                    f"refund {refund.id} is in {refund.currency.upper()}, not {input.currency}",
                    provider=PROVIDER,
                    provider_code="currency_mismatch",
                )
            out = CreateRefundOutput(
                refund_id=refund.id,
                status=refund.status or "pending",
                amount_minor=refund.amount,
                currency=refund.currency.upper(),
            )
            return ProviderResult(
                output=out, provider_object_id=refund.id, status=out.status,
                amount_minor=refund.amount, currency=out.currency,
                details={"order_id": input.order_id,
                         "refund_request_id": input.refund_request_id},
            )  # fmt: skip

        return await run_side_effect(self._runner, ctx, input, CreateRefundOutput, execute)
