"""A Printful hold (WF06) seen and decided from the command line, as docs/operations.md
"Fulfillment exceptions" shows: `autobiz order status` shows the exception, the plain
`temporal` CLI queries the exception flow's status (its diagnosis and options) and sends
the ``decide`` update with a choice signed by `autobiz approvals sign --choice`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from autobiz.db.database import Database
from tests.autobiz.cli.support import Cli
from tests.ingress.test_end_to_end import delivering_webhooks
from tests.support.plain_temporal import TemporalCli
from tests.workflows.orders.test_fulfillment_exception import exception_of, paid_in_production
from tests.workflows.support import Harness

pytestmark = pytest.mark.e2e


async def test_an_exception_seen_and_decided_from_the_cli(
    harness: Harness,
    database: Database,
    temporal: TemporalCli,
    cli: Cli,
) -> None:
    h = harness
    await cli("approvals", "keys", "create", "--as", "omar")
    order_id, handle, pf_id = await paid_in_production(h)
    async with delivering_webhooks(h, database):
        await h.sandbox.control.advance_printful(pf_id, "hold", reason="Print file too small")
        shown = await exception_of(h, handle.id, "awaiting_decision")
        child_id, request_id = shown["workflow_id"], shown["request_id"]

        # `autobiz order status`: the order's flow shows the exception and what to do.
        live = (await cli("order", "status", order_id, "--json")).json()
        exception = live["live"]["detail"]["exception"]
        assert exception["cause"] == "printfile" and exception["request_id"] == request_id
        human = await cli("order", "status", order_id)
        assert "order_put_hold: printfile (recommended: fix)" in human.stdout
        assert "fix|cancel_and_refund|contact_customer" in " ".join(human.stdout.split())

        # The plain CLI: the exception flow's status, with the diagnosis and the options.
        out = await temporal(
            "workflow", "query", "--workflow-id", child_id, "--name", "status", "-o", "json"
        )
        status: dict[str, Any] = json.loads(out.stdout)["queryResult"][0]
        assert status["state"] == "awaiting_decision"
        assert status["detail"]["diagnosis"]["cause"] == "printfile"
        assert status["approval"]["options"] == ["fix", "cancel_and_refund", "contact_customer"]

        signed = await cli(
            "approvals", "sign", request_id, "--as", "omar", "--choice", "contact_customer"
        )
        decided = await temporal(
            "workflow",
            "update",
            "execute",
            "--workflow-id",
            child_id,
            "--name",
            "decide",
            "--input",
            signed.stdout,
            "-o",
            "json",
        )
        assert '"approved"' in decided.stdout
        result = await temporal("workflow", "result", "--workflow-id", child_id, "-o", "json")
        assert '"contacted"' in result.stdout
        await h.status_when(handle.id, lambda s: s.state == "on_hold")
