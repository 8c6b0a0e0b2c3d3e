"""The flows driven with the plain `temporal` CLI, exactly as docs/operations.md shows:
start with a JSON input, query ``status``, the ``decide`` update (refusals — unsigned, the
wrong role — and an approval signed by `autobiz approvals sign`), the ``decide_signal``
signal, a list by search attributes, the result — through the codec server, so what the
CLI writes is encrypted at rest like everything else. Someone with frontend access and no
approver key cannot approve: an unsigned decision is refused and leaves no event."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from autobiz.codec import ENCODING
from tests.autobiz.cli.support import Cli, CliResult
from tests.support.plain_temporal import TemporalCli, start_workflow
from tests.workflows.support import Harness, eventually
from workflows.orders.models import OrderFulfillResult

pytestmark = pytest.mark.e2e


async def _decide(
    temporal: TemporalCli, workflow_id: str, decision: str, *flags: str, check: bool = True
) -> CliResult:
    """``temporal workflow update execute --name decide`` with ``decision`` (JSON)."""
    return await temporal(
        "workflow",
        "update",
        "execute",
        "--workflow-id",
        workflow_id,
        "--name",
        "decide",
        *flags,
        "--input",
        decision,
        check=check,
    )


_DECIDE_SIGNAL = ("workflow", "signal", "--name", "decide_signal")


async def _status(temporal: TemporalCli, workflow_id: str) -> dict[str, Any]:
    out = await temporal(
        "workflow", "query", "--workflow-id", workflow_id, "--name", "status", "-o", "json"
    )
    data: dict[str, Any] = json.loads(out.stdout)["queryResult"][0]
    return data


async def _pending_request(temporal: TemporalCli, workflow_id: str) -> str:
    async def probe() -> str | None:
        approval = (await _status(temporal, workflow_id)).get("approval") or {}
        return approval.get("request_id") if approval.get("status") == "pending" else None

    return await eventually(probe, what=f"approval pending on {workflow_id}")


async def _accepted_updates(h: Harness, workflow_id: str) -> int:
    history = await h.client.get_workflow_handle(workflow_id).fetch_history()
    return sum(
        1
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    )


async def test_refund_with_the_plain_cli(harness: Harness, temporal: TemporalCli, cli: Cli) -> None:
    h = harness
    for approver in ("ana", "omar"):
        await cli("approvals", "keys", "create", "--as", approver)
    order_id, pi = await h.captured_order("100.00")
    rid = f"ticket-{uuid.uuid4().hex[:8]}"
    wid = f"refund:{h.tenant}:{rid}"
    refund = {
        "tenant_id": h.tenant,
        "refund_request_id": rid,
        "order_id": order_id,
        "payment_intent_id": pi,
        "amount_minor": 6000,
        "currency": "USD",
    }
    await start_workflow(
        temporal,
        h,
        "Refund",
        wid,
        refund,
        "--search-attribute",
        f'TenantId="{h.tenant}"',
        "--search-attribute",
        f'OrderId="{order_id}"',
    )
    # The CLI encoded its input through the codec server: encrypted in history.
    history = await h.client.get_workflow_handle(wid).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.input.payloads[0].metadata["encoding"] == ENCODING

    request_id = await _pending_request(temporal, wid)

    async def listed() -> bool | None:
        out = await temporal(
            "workflow",
            "list",
            "--query",
            f'TenantId="{h.tenant}" AND ApprovalPending=true',
            "-o",
            "json",
        )
        return True if wid in out.stdout else None

    await eventually(listed, what="the visibility list")

    # A real approver's name and no proof: refused before history, nothing refunded.
    unsigned = {"tenant_id": h.tenant, "approver": "ana", "approve": True, "request_id": request_id}
    refused = await _decide(temporal, wid, json.dumps(unsigned), check=False)
    assert refused.code != 0 and "carries no proof" in refused.stdout + refused.stderr
    assert await _accepted_updates(h, wid) == 0
    assert await h.refunded(pi) == 0
    # Signed, by someone without the role.
    omar = (await cli("approvals", "sign", request_id, "--as", "omar")).stdout
    refused = await _decide(temporal, wid, omar, check=False)
    assert refused.code != 0 and "none of the roles finance" in refused.stdout + refused.stderr
    assert await _accepted_updates(h, wid) == 0
    signed = (await cli("approvals", "sign", request_id, "--as", "ana", "--reason", "ok")).stdout
    approved = await _decide(temporal, wid, signed, "--update-id", f"approve-{rid}", "-o", "json")
    assert '"approved"' in approved.stdout

    out = await temporal("workflow", "result", "--workflow-id", wid, "-o", "json")
    assert '"refunded"' in out.stdout
    assert (await _status(temporal, wid))["state"] == "refunded"


async def test_order_denied_by_signal_with_the_plain_cli(
    harness: Harness, temporal: TemporalCli, cli: Cli
) -> None:
    h = harness
    await cli("approvals", "keys", "create", "--as", "omar")
    order_id, pi = await h.authorized_order("600.00")
    wid = f"order:{h.tenant}:{order_id}"
    order = {"tenant_id": h.tenant, "order_id": order_id, "payment_intent": pi}
    await start_workflow(temporal, h, "OrderFulfill", wid, order)
    request_id = await _pending_request(temporal, wid)
    # Unsigned, then signed: the first is dropped (the run keeps waiting), the second
    # decides. Signals are handled in order, so the outcome shows which one counted.
    unsigned = {"tenant_id": h.tenant, "approver": "omar", "approve": True}
    await temporal(*_DECIDE_SIGNAL, "--workflow-id", wid, "--input", json.dumps(unsigned))
    signed = await cli(
        "approvals", "sign", request_id, "--as", "omar", "--deny", "--reason", "fraud"
    )
    await temporal(*_DECIDE_SIGNAL, "--workflow-id", wid, "--input", signed.stdout)
    handle = h.client.get_workflow_handle(wid, result_type=OrderFulfillResult)
    assert (await handle.result()).state == "rejected"
    intent = await h.clients.stripe.retrieve_payment_intent(pi)
    assert intent.status == "requires_capture"  # denied: nothing captured
