"""A worker killed between SendGrid's answer and the record sends one email (issue 10
§4): the real `autobiz worker` process runs a Refund; SendGrid (the sandbox) accepts the
receipt email and withholds its answer (``commit_then_drop``); the worker is killed with
SIGKILL while it waits. The retry, on a new worker once the attempt's start-to-close
timeout has passed, finds the outbox claim with no answer recorded: it does not send
again, records the outcome as ``unknown`` with an ops note, and the refund completes."""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

import pytest

from autobiz.ledger.email_outbox import EmailOutbox
from starters.flows import request_refund
from tests.support.orders import authorize, seed_order
from tests.support.sandbox import sandbox, sandbox_server  # noqa: F401
from tests.workers.test_worker_kill import (  # noqa: F401
    RECOVERY_SECONDS,
    Rig,
    _activity_attempts,
    rig,
)
from tests.workflows.support import FAST, eventually, tenant_config

pytestmark = pytest.mark.integration

EMAIL_TOOL = "sendgrid.send_email@1"
TEMPLATE = "d-autobiz-refund-issued"


def _receipt_emails(r: Rig) -> list[dict[str, Any]]:
    return [
        m
        for m in r.state.sendgrid.outbox
        if m["account"] == r.tenant and m["request"].get("template_id") == TEMPLATE
    ]


async def test_worker_killed_after_sendgrid_accepted_sends_one_email(rig: Rig) -> None:  # noqa: F811
    order_id = await seed_order(
        rig.sandbox.control, rig.clients.shop_domain, "25.00", financial_status="paid"
    )
    pi = await authorize(rig.clients.stripe, rig.tenant, 2500, order_id, capture=True)
    # SendGrid accepts the message, and its answer never reaches the worker.
    await rig.sandbox.control.fault(
        "commit_then_drop", "/sendgrid/v3/mail/send", method="POST", hang_seconds=120
    )
    first = await rig.spawn()
    handle = await request_refund(
        rig.client,
        tenant_config(rig.tenant),
        order_id=order_id,
        payment_intent_id=pi,
        amount_minor=1500,
        currency="USD",
        task_queue=rig.task_queue,
        refund_request_id=f"rr-{uuid.uuid4().hex[:12]}",
        timing=FAST,
    )

    async def accepted_and_waiting() -> bool | None:
        if not _receipt_emails(rig):
            return None
        return True if await rig.started_attempt(handle, EMAIL_TOOL) == 1 else None

    await eventually(accepted_and_waiting, within=60, what="SendGrid accepted, worker waiting")
    first.proc.kill()  # SIGKILL between SendGrid's answer and the record
    assert await first.exit_code() == -signal.SIGKILL

    await rig.spawn()
    result = await asyncio.wait_for(handle.result(), timeout=RECOVERY_SECONDS)
    assert result.state == "refunded"

    events = list((await handle.fetch_history()).events)
    assert _activity_attempts(events, EMAIL_TOOL) == [2]  # the killed attempt was retried
    assert len(_receipt_emails(rig)) == 1  # ... and sent nothing
    async with rig.db.tenant(rig.tenant) as s:
        email = await s.fetch_one(
            "SELECT internal_key, status FROM receipts WHERE tenant_id = %s AND "
            "workflow_id = %s AND tool = 'sendgrid.send_email'",
            (rig.tenant, handle.id),
        )
        notes = await s.fetch_all(
            "SELECT outcome FROM audit_log WHERE tenant_id = %s AND "
            "action = 'email.outcome_unknown'",
            (rig.tenant,),
        )
    assert email is not None and email["status"] == "unknown"
    claim = await EmailOutbox(rig.db).get(rig.tenant, email["internal_key"])
    assert claim is not None and claim.status == "unknown"
    assert [n["outcome"] for n in notes] == ["not_resent"]
