"""`autobiz wismo list` as an operator runs it (subprocess), against a real worker,
Temporal and the sandbox: the newest WISMO runs with their message, order and outcome."""

from __future__ import annotations

from typing import Any

import pytest

from tests.autobiz.cli.support import Cli
from tests.workflows.care.test_wismo import asked_directly, fulfilled_order
from tests.workflows.support import Harness, eventually
from workflows.ids import wismo_workflow_id

pytestmark = pytest.mark.e2e


async def test_wismo_list_shows_message_order_and_outcome(harness: Harness, cli: Cli) -> None:
    h = harness
    order, _ = await fulfilled_order(h)
    email, _ = await asked_directly(h, order, domain="mail.customer.test", authenticated=True)
    workflow_id = wismo_workflow_id(h.tenant, email.message_id)

    async def listed() -> dict[str, Any] | None:
        runs = (await cli("wismo", "list", "--json")).json()["runs"]
        return next((r for r in runs if r["workflow_id"] == workflow_id), None)

    row = await eventually(listed, what="the run in `autobiz wismo list`")
    assert row["status"] == "COMPLETED" and row["state"] == "answered"
    assert row["outcome"] == "answered" and row["order_name"] == order["name"]
    assert row["message_id"] == email.message_id
    human = await cli("wismo", "list")
    for text in (order["name"], "answered", email.message_id):
        assert text in human.stdout
