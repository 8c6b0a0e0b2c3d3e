"""A provider not-found inside a call's grace is "not there yet" (retryable); after it,
or on a lookup / a call without grace, it is the decisive PROVIDER_NOT_FOUND."""

from __future__ import annotations

import dataclasses

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.errors import provider_errors
from autobiz.ledger.executor import verify_call
from autobiz.providers.errors import NotFound, ProviderUnavailable
from kernel import tools
from kernel.call import _not_found_grace
from kernel.codes import ErrorCode
from kernel.contracts import CallContext, RetrySpec, ToolContract
from kernel.tools.printful import PrintfulOrderRef
from kernel.tools.shopify import GetOrderInput
from tests.support.calls import call_context

pytestmark = pytest.mark.unit


def _ctx(grace: int) -> tuple[CallContext, GetOrderInput]:
    input = GetOrderInput(order_id="1001")
    ctx = call_context(
        "t-1",
        tools.shopify.GET_ORDER,
        input,
        workflow_id="order:t-1:1001",
        step="get_order",
        run_id="r",
        not_found_grace=grace,
    )
    return ctx, input


@activity.defn(name="shopify.get_order@1")
async def _missing(ctx: CallContext, input: GetOrderInput) -> None:
    with provider_errors():
        verify_call(ctx, input)
        raise NotFound(
            "order not found", provider="shopify", provider_code="NOT_FOUND", http_status=404
        )


async def _error_on_attempt(grace: int, attempt: int) -> ApplicationError:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    with pytest.raises(ApplicationError) as caught:
        await env.run(_missing, *_ctx(grace))
    return caught.value


async def test_not_found_within_the_grace_is_retryable_not_found_yet() -> None:
    for attempt in (1, 4):
        err = await _error_on_attempt(4, attempt)
        assert err.type == ErrorCode.PROVIDER_NOT_FOUND_YET and not err.non_retryable
        assert err.details[0]["attempt"] == attempt and err.details[0]["not_found_grace"] == 4


async def test_not_found_after_the_grace_or_without_one_is_decisive() -> None:
    for grace, attempt in ((4, 5), (0, 1)):
        err = await _error_on_attempt(grace, attempt)
        assert err.type == "PROVIDER_NOT_FOUND" and err.non_retryable


async def test_other_errors_keep_their_own_mapping_inside_the_grace() -> None:
    @activity.defn(name="shopify.get_order@1")
    async def down(ctx: CallContext, input: GetOrderInput) -> None:
        with provider_errors():
            verify_call(ctx, input)
            raise ProviderUnavailable("503", provider="shopify", http_status=503)

    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(down, *_ctx(4))
    assert caught.value.type == "PROVIDER_UNAVAILABLE" and not caught.value.non_retryable


def test_reads_of_objects_we_were_told_exist_have_a_grace_lookups_do_not() -> None:
    for contract in (
        tools.shopify.GET_ORDER,
        tools.printful.GET_ORDER,
        tools.stripe.GET_PAYMENT_INTENT,
    ):
        assert 0 < contract.not_found_grace < contract.retry.max_attempts
    by_id = PrintfulOrderRef(printful_order_id=7)
    by_external_id = PrintfulOrderRef(external_id="1001-abc")
    assert _not_found_grace(4, by_id, absent_ok=False) == 4
    # "Is there a Printful order for this order?" — a not-found is the answer.
    assert _not_found_grace(4, by_external_id, absent_ok=False) == 0
    # A caller for whom absence is an answer (a reconciliation sweep).
    assert _not_found_grace(4, by_id, absent_ok=True) == 0


def test_a_grace_must_leave_an_attempt_for_the_decisive_answer() -> None:
    with pytest.raises(ValueError, match="not_found_grace"):
        dataclasses.replace(
            tools.shopify.GET_ORDER, retry=RetrySpec(max_attempts=4), not_found_grace=4
        )
    assert isinstance(
        dataclasses.replace(tools.shopify.GET_ORDER, retry=RetrySpec(max_attempts=0)), ToolContract
    )
