"""The baseline for ``bench/order_bench.py``: a workflow with no kernel at all.

``BenchBare`` runs a given list of activities one after another. The list is the
activity types an OrderFulfill run actually scheduled, read from its history, so the
baseline has the same number of activities in the same order. Each one is served by
one dynamic activity:

- ``bench:<type>``: a no-op that decodes its argument and returns ``{}``;
- ``bench-http:<type>``: for provider tools, the same provider requests the real tool
  makes (same clients, same sandbox), without the gate, the idempotency store, receipts,
  the trace or the projection. For the database plumbing (``kernel.*``, ``autobiz.*``)
  and the pure ``risk.assess``, it is the no-op.

The "same provider calls" baseline (B1, DESIGN §13) runs only the activities in
:data:`PROVIDER_TOOLS` (the tools that reach a provider), each as ``bench-http:``: no
plumbing activity at all.

There are no search attributes, no pydantic models and no approval desk: only Temporal
and, in the HTTP variant, the providers.

``BenchBareApproval`` is the baseline of the approval round trip (B2): a workflow that
waits until its ``decide`` update arrives; the handler records the decision and returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RawValue, RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

BARE_WORKFLOW = "BenchBare"
NOOP_PREFIX = "bench:"
HTTP_PREFIX = "bench-http:"
BARE_APPROVAL_WORKFLOW = "BenchBareApproval"
BARE_DECIDE_UPDATE = "decide"
# The tool activities that make provider requests (``BareActivities._http`` makes the same).
PROVIDER_TOOLS = frozenset(
    {
        "shopify.get_order@1",
        "stripe.capture_payment@1",
        "printful.create_order@1",
        "printful.confirm_order@1",
        "shopify.create_fulfillment@1",
        "sendgrid.send_email@1",
    }
)


def provider_calls(activities: Sequence[str]) -> list[str]:
    """The activities of one OrderFulfill history that reach a provider, in order."""
    return [name for name in activities if name in PROVIDER_TOOLS]


class BareInput(BaseModel):
    activities: list[str]
    http: bool = False
    # What the HTTP variant needs: the order it works on.
    carry: dict[str, Any] = {}


@workflow.defn(name=BARE_WORKFLOW)
class BareWorkflow:
    @workflow.run
    async def run(self, input: BareInput) -> int:
        prefix = HTTP_PREFIX if input.http else NOOP_PREFIX
        carry = dict(input.carry)
        for name in input.activities:
            out: dict[str, Any] = await workflow.execute_activity(
                prefix + name,
                carry,
                result_type=dict,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
            )
            carry.update(out)
        return len(input.activities)


@workflow.defn(name=BARE_APPROVAL_WORKFLOW)
class BareApprovalWorkflow:
    """Waits for one ``decide`` update, then ends (no desk, no proof, no activity)."""

    def __init__(self) -> None:
        self._decision: dict[str, Any] | None = None

    @workflow.run
    async def run(self) -> bool:
        await workflow.wait_condition(lambda: self._decision is not None)
        assert self._decision is not None
        return bool(self._decision.get("approve"))

    @workflow.update(name=BARE_DECIDE_UPDATE)
    def decide(self, decision: dict[str, Any]) -> dict[str, Any]:
        if self._decision is None:
            self._decision = decision
        return {"status": "approved" if decision.get("approve") else "denied"}


class BareActivities:
    """One dynamic activity for every ``bench:`` / ``bench-http:`` name."""

    def __init__(self, clients: Any) -> None:  # one tenant's ProviderClients
        self._clients = clients

    @activity.defn(dynamic=True)
    async def dispatch(self, args: Sequence[RawValue]) -> dict[str, Any]:
        carry: dict[str, Any] = activity.payload_converter().from_payload(args[0].payload, dict)
        name = activity.info().activity_type
        if name.startswith(HTTP_PREFIX):
            return await self._http(name.removeprefix(HTTP_PREFIX), carry)
        return {}

    async def _http(self, tool: str, carry: dict[str, Any]) -> dict[str, Any]:
        """The provider requests of the real tool activity (see ``activities/``)."""
        from autobiz.providers.printful_client import OrderItem, Recipient
        from autobiz.providers.sendgrid_client import Email
        from autobiz.providers.shopify_client import TrackingInfo

        c = self._clients
        gid = f"gid://shopify/Order/{carry.get('order_id')}"
        key = f"bench-{activity.info().workflow_id}-{tool}"
        if tool == "shopify.get_order@1":
            await c.shopify.get_order(gid)
        elif tool == "stripe.capture_payment@1":
            pi = await c.stripe.retrieve_payment_intent(carry["payment_intent"])
            if pi.status != "succeeded":
                await c.stripe.capture_payment_intent(
                    carry["payment_intent"], idempotency_key=key, amount_to_capture=pi.amount
                )
        elif tool == "printful.create_order@1":
            order = await c.printful.create_order(
                external_id=carry["external_id"],
                recipient=Recipient.model_validate(carry["recipient"]),
                items=[OrderItem(catalog_variant_id=4012, quantity=1)],
            )
            return {"printful_order_id": order.id}
        elif tool == "printful.confirm_order@1":
            await c.printful.confirm_order(carry["printful_order_id"])
        elif tool == "shopify.create_fulfillment@1":
            orders = await c.shopify.fulfillment_orders(gid)
            open_ids = [fo.id for fo in orders if fo.status == "OPEN"]
            if open_ids:
                await c.shopify.create_fulfillment(
                    open_ids, tracking=TrackingInfo(company="USPS", number="BENCH1")
                )
        elif tool == "sendgrid.send_email@1":
            await c.mailer.send(
                Email(
                    kind="shipping_confirmation",
                    to=[carry["email"]],
                    data={"subject": "shipped"},
                    reference=key,
                )
            )
        return {}
