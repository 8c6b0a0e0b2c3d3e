"""Receipts: one per side effect, immutable, linked to both keys; writes are retryable."""

from __future__ import annotations

import psycopg
import pytest

from autobiz.db.database import Database, TenantSession
from autobiz.ledger.executor import GateBypassedError, ProviderResult, SideEffectRunner
from autobiz.ledger.receipts import ReceiptDraft, ReceiptStore, ReceiptWriteError
from kernel import tools
from kernel.contracts import CallContext, SideEffect
from kernel.tools.stripe import CreateRefundInput, CreateRefundOutput
from tests.kernel.corpus import SECRETS
from tests.support.calls import call_context

pytestmark = pytest.mark.integration

INPUT = CreateRefundInput(
    payment_intent_id="pi_123",
    order_id="1001",
    refund_request_id="r1",
    amount_minor=5000,
    currency="USD",
)


def context(tenant: str, step: str = "refund", input: CreateRefundInput = INPUT) -> CallContext:
    return call_context(
        tenant,
        tools.stripe.CREATE_REFUND,
        input,
        workflow_id="refund:x:r1",
        step=step,
        workflow_type="refund",
        principal="ops:ana",
    )


class FakeStripe:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def refund(self, ctx: CallContext):
        async def call() -> ProviderResult[CreateRefundOutput]:
            self.calls.append(ctx.external_key)  # the provider sees the external key
            out = CreateRefundOutput(
                refund_id=f"re_{len(self.calls)}",
                status="succeeded",
                amount_minor=5000,
                currency="USD",
            )
            return ProviderResult(
                output=out,
                provider_object_id=out.refund_id,
                amount_minor=5000,
                currency="USD",
                details={"note": f"for {SECRETS['email']}"},
            )

        return call


async def test_one_receipt_per_side_effect_linked_to_both_keys(
    database: Database, tenant: str
) -> None:
    runner, stripe = SideEffectRunner(database), FakeStripe()
    ctx = context(tenant)
    first = await runner.run(ctx, INPUT, CreateRefundOutput, "7", stripe.refund(ctx))
    again = await runner.run(ctx, INPUT, CreateRefundOutput, "7", stripe.refund(ctx))
    assert first == again and stripe.calls == [ctx.external_key]
    other = context(tenant, step="refund-2")
    await runner.run(other, INPUT, CreateRefundOutput, "8", stripe.refund(other))

    receipts = await ReceiptStore(database).for_workflow(tenant, "refund:x:r1")
    assert len(receipts) == 2
    r = receipts[0]
    assert (r.internal_key, r.external_key) == (ctx.internal_key, ctx.external_key)
    assert r.external_key.startswith("autobiz:")
    assert (r.tool, r.tool_version, r.side_effect) == (
        "stripe.create_refund",
        "1",
        SideEffect.FINANCIAL,
    )
    assert (r.amount_minor, r.currency, r.provider_object_id) == (5000, "USD", "re_1")
    assert r.request_hash == ctx.request_hash and r.activity_id == "7"
    assert SECRETS["email"] not in str(r.details)


async def test_receipts_are_immutable(database: Database, tenant: str) -> None:
    runner, stripe = SideEffectRunner(database), FakeStripe()
    ctx = context(tenant)
    await runner.run(ctx, INPUT, CreateRefundOutput, "1", stripe.refund(ctx))
    for stmt in ("UPDATE receipts SET status = 'void'", "DELETE FROM receipts"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            async with database.tenant(tenant) as s:
                await s.execute(stmt)
    receipt = await ReceiptStore(database).get(tenant, ctx.internal_key)
    assert receipt is not None and receipt.status == "succeeded"


async def test_a_receipt_write_failure_is_retryable_and_loses_nothing(
    database: Database, tenant: str
) -> None:
    runner, stripe = SideEffectRunner(database), FakeStripe()
    ctx = context(tenant)
    broken = ReceiptStore(database)

    async def fail(session: TenantSession, draft: ReceiptDraft) -> bool:
        raise ReceiptWriteError("database unavailable")

    original = runner.receipts.write_in
    runner.receipts.write_in = fail  # type: ignore[method-assign]
    with pytest.raises(ReceiptWriteError):
        await runner.run(ctx, INPUT, CreateRefundOutput, "1", stripe.refund(ctx))
    assert await broken.get(tenant, ctx.internal_key) is None
    # The key is released at once (the retry need not wait for the attempt's lease).
    key = await runner.idempotency.get(tenant, ctx.internal_key)
    assert key is not None and (key.status, key.result) == ("failed", None)
    runner.receipts.write_in = original  # type: ignore[method-assign]
    # The retry resends the same external key (the provider dedups) and writes the receipt.
    await runner.run(ctx, INPUT, CreateRefundOutput, "1", stripe.refund(ctx))
    assert stripe.calls == [ctx.external_key, ctx.external_key]
    assert await broken.get(tenant, ctx.internal_key) is not None


async def test_the_receipt_commits_with_the_succeeded_key_or_not_at_all(
    database: Database, tenant: str
) -> None:
    """One transaction after the provider call: a receipt inserted in a finish that then
    fails is rolled back with it, so no receipt exists for a key not recorded as done."""
    runner, stripe = SideEffectRunner(database), FakeStripe()
    ctx = context(tenant)
    insert = runner.receipts.write_in

    async def inserted_then_failed(session: TenantSession, draft: ReceiptDraft) -> bool:
        assert await insert(session, draft)
        raise psycopg.errors.SerializationFailure("the transaction could not commit")

    runner.receipts.write_in = inserted_then_failed  # type: ignore[method-assign]
    with pytest.raises(ReceiptWriteError):
        await runner.run(ctx, INPUT, CreateRefundOutput, "1", stripe.refund(ctx))
    assert await ReceiptStore(database).get(tenant, ctx.internal_key) is None
    key = await runner.idempotency.get(tenant, ctx.internal_key)
    assert key is not None and key.status == "failed"
    runner.receipts.write_in = insert  # type: ignore[method-assign]
    await runner.run(ctx, INPUT, CreateRefundOutput, "1", stripe.refund(ctx))
    assert stripe.calls == [ctx.external_key, ctx.external_key]
    receipt = await ReceiptStore(database).get(tenant, ctx.internal_key)
    key = await runner.idempotency.get(tenant, ctx.internal_key)
    assert receipt is not None and key is not None and key.status == "succeeded"


async def test_store_maps_database_errors_to_retryable(database: Database, tenant: str) -> None:
    ctx = context(tenant)
    draft = ReceiptDraft(
        tenant_id="no-such-tenant",
        workflow_id="w",
        run_id="r",
        activity_id="1",
        tool="stripe.create_refund",
        tool_version="1",
        side_effect=SideEffect.FINANCIAL,
        internal_key=ctx.internal_key,
        external_key=ctx.external_key,
        request_hash="h",
        provider="stripe",
        status="succeeded",
        amount_minor=1,
        currency="USD",
    )
    with pytest.raises(ReceiptWriteError):
        await ReceiptStore(database).record(draft)
    with pytest.raises(ReceiptWriteError):
        await ReceiptStore(database).write(draft)


async def test_write_is_one_row_per_key_redacted_and_record_returns_it(
    database: Database, tenant: str
) -> None:
    ctx = context(tenant)
    draft = ReceiptDraft(
        tenant_id=tenant,
        workflow_id="refund:x:r1",
        run_id="r",
        activity_id="1",
        tool="stripe.create_refund",
        tool_version="1",
        side_effect=SideEffect.FINANCIAL,
        internal_key=ctx.internal_key,
        external_key=ctx.external_key,
        request_hash="h",
        provider="stripe",
        status="succeeded",
        amount_minor=5000,
        currency="USD",
        details={"note": f"for {SECRETS['email']}"},
    )
    store = ReceiptStore(database)
    assert await store.write(draft) is True
    assert await store.write(draft) is False  # a retry: already written, nothing added
    stored = await store.get(tenant, ctx.internal_key)
    assert stored is not None and SECRETS["email"] not in str(stored.details)
    # record() answers a repeat with the receipt already written, as stored.
    assert await store.record(draft) == stored
    # A new receipt through record(): what it returns is what was stored.
    other = draft.model_copy(update={"internal_key": ctx.internal_key + "-2"})
    assert await store.record(other) == await store.get(tenant, other.internal_key)
    assert len(await store.for_workflow(tenant, "refund:x:r1")) == 2


async def test_a_call_that_did_not_come_through_the_gate_is_refused(
    database: Database, tenant: str
) -> None:
    runner, stripe = SideEffectRunner(database), FakeStripe()
    forged = context(tenant).model_copy(update={"external_key": "autobiz:forged"})
    with pytest.raises(GateBypassedError):
        await runner.run(forged, INPUT, CreateRefundOutput, "1", stripe.refund(forged))
    tampered = INPUT.model_copy(update={"amount_minor": 9999})
    with pytest.raises(GateBypassedError):
        await runner.run(context(tenant), tampered, CreateRefundOutput, "1", stripe.refund(forged))
    assert stripe.calls == []
