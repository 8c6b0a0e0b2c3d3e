"""The demo day's customer care (WF05 WISMO), acted out as customers act.

* Order #8 is paid, printed and shipped (OrderFulfill writes Printful's tracking to
  Shopify). Its customer writes "where is my order #…?" — an email SendGrid's Inbound
  Parse posts to the ingress with the shop's parse-URL credential — and WISMO answers it
  directly: the reply in SendGrid's outbox carries the tracking number.
* The same customer writes again, asking for a refund: the drafted reply goes to review,
  and ops approve it from the CLI with their own wording (``autobiz approvals approve
  <request> --as omar --edit-file reply.txt``): the reply sent is that text.

Judged by Temporal (each run's state and outcome) and by what the sandbox's SendGrid
received, never by what this script did.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from workflows.ids import wismo_workflow_id

if TYPE_CHECKING:
    from autobiz.demo.business_day import BusinessDay, Case

CUSTOMER = "customer@example.com"  # whom the day's checkouts belong to
EDITED = (
    "Hello, thank you for writing. Your poster {order} is on its way with tracking number "
    "{tracking}. We are sorry it is taking a while; a colleague will reply about the "
    "refund today. Kind regards, the Demo Print Shop"
)


async def care_cases(day: BusinessDay) -> None:
    """Both WISMO cases (one line in the day's ``gather``)."""
    order = day._case("order #8: paid, printed, shipped", "OrderFulfill", "completed")
    answered = day._case(
        "order #8: customer asks where it is; answered with its tracking", "WISMO", "answered"
    )
    reviewed = day._case(
        "order #8: customer wants the money back; the reply reviewed, edited from the CLI",
        "WISMO",
        "answered",
    )
    placed = await day._fulfilled_order(order, "30.00")
    if placed is None:
        for case in (answered, reviewed):
            case.problems.append("order #8 did not complete, so nobody wrote in")
        return
    order_id = placed[0]
    try:
        fulfilled = await day.client.get_workflow_handle(str(order.workflow_id)).result()
        tracking = str(fulfilled.get("tracking_number") or "")
        name = await _order_name(day, order_id)
    except Exception as exc:  # the day reports it, it does not stop
        answered.problems.append(f"order #8 unreadable: {exc}")
        return
    await asyncio.gather(
        _where_is_it(day, answered, name, tracking),
        _refund_reviewed(day, reviewed, name, tracking),
    )
    for case in (answered, reviewed):
        if case.workflow_id is None and not case.problems:
            case.problems.append("no WISMO run")


async def _order_name(day: BusinessDay, order_id: str) -> str:
    shopify = (await day.clients.for_tenant(day.tenant)).shopify
    return (await shopify.get_order(f"gid://shopify/Order/{order_id}")).name


async def _write_in(day: BusinessDay, case: Case, subject: str, text: str) -> None:
    """The customer's email, through the sandbox's Inbound Parse to the ingress."""
    from autobiz.demo.business_day import _CaseFailed

    sent = await day.control.send_inbound_email(
        tenant=day.tenant,
        from_email=CUSTOMER,
        from_name="Casey Customer",
        subject=subject,
        text=text,
    )
    if sent.get("status") != 200:
        raise _CaseFailed(
            f"the ingress refused the email: {sent.get('status')} {sent.get('answer')}"
        )
    case.workflow_id = wismo_workflow_id(day.tenant, str(sent["message_id"]))
    case.facts["message_id"] = sent["message_id"]
    day.say(f"{case.name}: {CUSTOMER} writes {subject!r} (Inbound Parse → ingress)")


async def _reply(day: BusinessDay, case: Case) -> dict[str, Any] | None:
    """What SendGrid received for this run's customer: the reply to its email."""
    message_id = case.facts.get("message_id")
    for message in await day.control.outbox():
        request = message["request"]
        if (request.get("headers") or {}).get("In-Reply-To") == message_id:
            data: dict[str, Any] = request["personalizations"][0]["dynamic_template_data"]
            return data
    return None


async def _outcome(day: BusinessDay, case: Case) -> None:
    result = await day.client.get_workflow_handle(str(case.workflow_id)).result()
    case.facts["outcome"] = result.get("outcome")
    case.facts["review_reason"] = result.get("review_reason")


async def _where_is_it(day: BusinessDay, case: Case, name: str, tracking: str) -> None:
    from autobiz.demo.business_day import _CaseFailed

    try:
        await _write_in(day, case, f"Where is my order {name}?", "Hi! Has my poster shipped yet?")
        await day._settle(case)
        await _outcome(day, case)
        reply = await _reply(day, case)
        if reply is None:
            case.problems.append("SendGrid received no reply")
        elif not tracking or tracking not in str(reply.get("body")):
            case.problems.append(f"the reply does not carry the tracking number {tracking}")
        else:
            case.facts["tracking_number"] = tracking
        if case.facts.get("outcome") != "answered":
            case.problems.append(f"outcome {case.facts.get('outcome')}, expected answered")
    except _CaseFailed as failed:
        case.problems.append(str(failed))


async def _refund_reviewed(day: BusinessDay, case: Case, name: str, tracking: str) -> None:
    from autobiz.demo.business_day import _CaseFailed

    try:
        await _write_in(
            day, case, f"Refund for {name}?", "It is taking forever. Can I get a refund instead?"
        )
        status = await day._state(
            case, lambda s: s.approval is not None and s.approval.status == "pending"
        )
        assert status.approval is not None
        request_id = status.approval.request_id
        text = EDITED.format(order=name, tracking=tracking)
        path = day.settings.home_dir / "demo" / f"wismo-reply-{request_id.rsplit(':', 1)[-1]}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        case.facts["approval"] = await day._cli_approval(
            case,
            request_id,
            "omar",
            "--edit-file",
            str(path),
            reason="demo: a kinder reply",
            shown=("--edit-file", path.name),
        )
        await day._settle(case)
        await _outcome(day, case)
        reply = await _reply(day, case)
        if reply is None:
            case.problems.append("SendGrid received no reply")
        elif reply.get("body") != text:
            case.problems.append("the reply sent is not the reviewer's edited text")
        if case.facts.get("outcome") != "answered_after_review":
            case.problems.append(
                f"outcome {case.facts.get('outcome')}, expected answered_after_review"
            )
    except _CaseFailed as failed:
        case.problems.append(str(failed))
