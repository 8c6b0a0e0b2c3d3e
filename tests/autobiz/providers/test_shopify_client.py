"""ShopifyAdmin against the sandbox over real HTTP."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from autobiz.providers.errors import (
    IdempotencyConflict,
    InvalidRequest,
    NotFound,
    ProviderUnavailable,
    RateLimited,
)
from autobiz.providers.shopify_client import ShopifyAdmin, TrackingInfo
from tests.support.sandbox import Sandbox, with_timeout

pytestmark = pytest.mark.integration


@pytest.fixture
async def shopify(sandbox: Sandbox):
    client = ShopifyAdmin(sandbox.settings)
    yield client
    await client.aclose()


async def seed(sandbox: Sandbox) -> str:
    order = await sandbox.control.seed_shopify_order(
        line_items=[{"title": "Mug", "quantity": 2, "price": "15.00", "sku": "MUG-1"}]
    )
    return str(order["id"])


async def test_order_by_id_with_line_items_and_financial_state(
    sandbox: Sandbox, shopify: ShopifyAdmin
) -> None:
    order_id = await seed(sandbox)
    order = await shopify.get_order(order_id)
    assert order.financial_status == "PAID"
    assert order.total.amount == Decimal("30.00")
    assert [(li.title, li.quantity, li.sku) for li in order.line_items] == [("Mug", 2, "MUG-1")]
    with pytest.raises(NotFound):
        await shopify.get_order("gid://shopify/Order/1")


async def test_order_names_its_shipping_address_and_stripe_payment(
    sandbox: Sandbox, shopify: ShopifyAdmin
) -> None:
    seeded = await sandbox.control.seed_shopify_order(
        financial_status="authorized",
        payment_intent="pi_demo123",
        shipping_address={
            "name": "Grace Hopper",
            "address1": "1 Navy Way",
            "city": "Arlington",
            "zip": "22202",
            "country_code": "US",
            "province_code": "VA",
        },
    )
    order = await shopify.get_order(str(seeded["id"]))
    assert order.payment_intent_id == "pi_demo123"
    assert order.shipping_address is not None
    assert (
        order.shipping_address.name,
        order.shipping_address.country_code,
        order.shipping_address.province_code,
    ) == ("Grace Hopper", "US", "VA")

    # Pending (no successful transaction) and addressless orders name neither.
    bare = await sandbox.control.seed_shopify_order(
        financial_status="pending", payment_intent="pi_demo456", shipping_address=None
    )
    order = await shopify.get_order(str(bare["id"]))
    assert order.payment_intent_id is None
    assert order.shipping_address is None


async def test_refund_create_is_idempotent_and_bounded(
    sandbox: Sandbox, shopify: ShopifyAdmin
) -> None:
    order_id = await seed(sandbox)
    k = f"autobiz:{uuid.uuid4().hex}"
    first = await shopify.create_refund(
        order_id, amount=Decimal("10"), gateway="stripe", idempotency_key=k
    )
    again = await shopify.create_refund(
        order_id, amount=Decimal("10"), gateway="stripe", idempotency_key=k
    )
    assert first.id == again.id
    assert (await shopify.get_order(order_id)).refunded.amount == Decimal("10.00")
    with pytest.raises(IdempotencyConflict) as mismatch:
        await shopify.create_refund(
            order_id, amount=Decimal("11"), gateway="stripe", idempotency_key=k
        )
    assert mismatch.value.retryable is False
    with pytest.raises(InvalidRequest, match="exceeds"):
        await shopify.create_refund(
            order_id, amount=Decimal("20.01"), gateway="stripe", idempotency_key=uuid.uuid4().hex
        )
    await shopify.create_refund(
        order_id, amount=Decimal("20"), gateway="stripe", idempotency_key=uuid.uuid4().hex
    )
    assert (await shopify.get_order(order_id)).financial_status == "REFUNDED"


async def test_cancel_once_then_user_error(sandbox: Sandbox, shopify: ShopifyAdmin) -> None:
    order_id = await seed(sandbox)
    result = await shopify.cancel_order(order_id, reason="CUSTOMER", staff_note="asked by mail")
    assert result.done
    assert (await shopify.get_order(order_id)).cancelled_at is not None
    with pytest.raises(InvalidRequest, match="already been cancelled"):
        await shopify.cancel_order(order_id)


async def test_fulfillment_with_tracking(sandbox: Sandbox, shopify: ShopifyAdmin) -> None:
    order_id = await seed(sandbox)
    [fo] = await shopify.fulfillment_orders(order_id)
    assert fo.status == "OPEN"
    tracking = TrackingInfo(company="USPS", number="9400100000000000000000")
    fulfillment = await shopify.create_fulfillment([fo.id], tracking=tracking)
    assert fulfillment.status == "SUCCESS"
    assert (await shopify.get_order(order_id)).fulfillment_status == "FULFILLED"
    with pytest.raises(InvalidRequest, match="unfulfillable"):
        await shopify.create_fulfillment([fo.id], tracking=tracking)


async def test_tags_and_note(sandbox: Sandbox, shopify: ShopifyAdmin) -> None:
    order_id = await seed(sandbox)
    await shopify.add_tags(order_id, ["autobiz", "high-risk"])
    await shopify.add_tags(order_id, ["autobiz"])
    await shopify.set_note(order_id, "held for review")
    order = await shopify.get_order(order_id)
    assert (order.tags, order.note) == (["autobiz", "high-risk"], "held for review")


async def test_throttled_is_retryable_with_a_wait_and_the_client_then_holds_back(
    sandbox: Sandbox, shopify: ShopifyAdmin
) -> None:
    order_id = await seed(sandbox)
    await sandbox.control.rate_limits(
        enabled=True, shopify_bucket_size=20, shopify_restore_rate=0.5
    )
    await shopify.get_order(order_id)  # costs 12 of 20
    fresh = ShopifyAdmin(sandbox.settings)  # knows nothing about the bucket yet
    try:
        with pytest.raises(RateLimited) as throttled:
            await fresh.get_order(order_id)
        assert throttled.value.provider_code == "THROTTLED"
        assert throttled.value.retryable
        assert throttled.value.retry_after is not None and throttled.value.retry_after > 0
    finally:
        await fresh.aclose()
    # The first client saw throttleStatus and refuses locally instead of hammering Shopify.
    with pytest.raises(RateLimited):
        await shopify.get_order(order_id)


async def test_5xx_and_timeouts_are_retryable(sandbox: Sandbox) -> None:
    order_id = await seed(sandbox)
    fast = ShopifyAdmin(with_timeout(sandbox.settings, 0.5))
    try:
        await sandbox.control.fault("error", "/shopify/*", status=502)
        with pytest.raises(ProviderUnavailable) as bad_gateway:
            await fast.get_order(order_id)
        assert bad_gateway.value.http_status == 502
        await sandbox.control.fault("timeout", "/shopify/*", hang_seconds=5)
        with pytest.raises(ProviderUnavailable):
            await fast.get_order(order_id)
        await sandbox.control.fault("rate_limit", "/shopify/*", retry_after=2)
        with pytest.raises(RateLimited) as limited:
            await fast.get_order(order_id)
        assert limited.value.retry_after == 2
    finally:
        await fast.aclose()


async def test_commit_then_drop_refund_retry_refunds_once(sandbox: Sandbox) -> None:
    order_id = await seed(sandbox)
    fast = ShopifyAdmin(with_timeout(sandbox.settings, 0.5))
    try:
        await sandbox.control.fault("commit_then_drop", "/shopify/*", hang_seconds=5)
        k = uuid.uuid4().hex
        with pytest.raises(ProviderUnavailable):
            await fast.create_refund(
                order_id, amount=Decimal("5"), gateway="stripe", idempotency_key=k
            )
        await fast.create_refund(order_id, amount=Decimal("5"), gateway="stripe", idempotency_key=k)
        assert (await fast.get_order(order_id)).refunded.amount == Decimal("5.00")
    finally:
        await fast.aclose()
