"""`autobiz refund request` and `autobiz approvals list|approve|deny|keys` end to end: the
backlog from the database (RLS), decisions signed with the operator's own approver key
through the validated ``decide`` update."""

from __future__ import annotations

import asyncio
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg.types.json import Jsonb

from autobiz.db.database import Database
from starters.flows import decide
from tests.autobiz.cli.support import Cli
from tests.conftest import new_tenant
from tests.workflows.support import Harness
from workflows.common.models import Decision
from workflows.payments.models import RefundResult

pytestmark = pytest.mark.e2e


async def _keys(cli: Cli, *approvers: str) -> dict[str, str]:
    """``autobiz approvals keys create --as`` each approver; approver -> key id."""
    created = {}
    for approver in approvers:
        out = (await cli("approvals", "keys", "create", "--as", approver, "--json")).json()
        created[approver] = out["key_id"]
    return created


async def _pending_refund(
    h: Harness, cli: Cli, amount: str, *, keys: tuple[str, ...] = ("ana", "omar")
) -> tuple[str, str, str]:
    """Register the approvers' keys, request a refund through the CLI; return (workflow
    id, pending request id, pi)."""
    await _keys(cli, *keys)
    order_id, pi = await h.captured_order(in_ledger=True)
    rid = f"ticket-{uuid.uuid4().hex[:8]}"
    out = await cli(
        "refund",
        "request",
        order_id,
        "--amount",
        amount,
        "--payment-intent",
        pi,
        "--request-id",
        rid,
        "--note",
        "arrived damaged",
    )
    wid = f"refund:{h.tenant}:{rid}"
    assert "started refund" in out.stdout and wid in out.stdout
    return wid, await h.pending_request(wid), pi


async def _result(h: Harness, workflow_id: str) -> RefundResult:
    return await h.client.get_workflow_handle(workflow_id, result_type=RefundResult).result()


async def _accepted_updates(h: Harness, workflow_id: str) -> int:
    history = await h.client.get_workflow_handle(workflow_id).fetch_history()
    return sum(
        1
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    )


async def test_below_threshold_refund_completes(harness: Harness, cli: Cli) -> None:
    h = harness
    order_id, pi = await h.captured_order(in_ledger=True)
    request = ("refund", "request", order_id, "--amount", "20.00", "--payment-intent", pi)
    out = await cli(*request, "--wait", "--json")
    started = out.json()
    assert started["amount_minor"] == 2000 and started["currency"] == "USD"
    assert started["workflow_id"] == f"refund:{h.tenant}:{started['refund_request_id']}"
    assert started["result"]["state"] == "refunded" and started["result"]["approval"] is None
    assert await h.refunded(pi) == 2000
    # The same request id again: that refund has run, it never runs twice.
    again = await cli(*request, "--request-id", started["refund_request_id"], check=False)
    assert again.refused("REQUEST_CLOSED"), again.stderr
    assert await h.refunded(pi) == 2000
    listed = await cli("approvals", "list", "--output", "table")
    assert f"no pending approvals for {h.tenant}" in listed.stdout


async def test_above_threshold_listed_then_approved(harness: Harness, cli: Cli) -> None:
    h = harness
    wid, request_id, pi = await _pending_refund(h, cli, "60.00")
    assert await h.refunded(pi) == 0

    listed = (await cli("approvals", "list", "--json")).json()
    assert listed["tenant_id"] == h.tenant
    [item] = listed["approvals"]
    assert (item["request_id"], item["workflow_id"], item["action"]) == (request_id, wid, "refund")
    assert (item["amount_minor"], item["currency"]) == (6000, "USD")
    assert item["required_roles"] == ["finance"] and item["status"] == "pending"
    assert item["escalation_level"] == 0 and item["expired"] is False
    assert 0 <= item["age_seconds"] < item["expires_in_seconds"] <= 24 * 3600
    human = await cli("approvals", "list", "--output", "table")
    for text in (request_id, wid, "60.00 USD", "finance", "23h", "1 pending"):
        assert text in human.stdout

    approved = await cli(
        "approvals", "approve", request_id, "--as", "ana", "--reason", "ok", "--json"
    )
    decision = approved.json()
    assert decision["status"] == "approved" and decision["decided_by"] == "ana"
    assert decision["workflow_id"] == wid and decision["duplicate"] is False
    # Submitted twice: one outcome, one update in history.
    twice = (await cli("approvals", "approve", request_id, "--as", "ana", "--json")).json()
    assert twice["status"] == "approved" and twice["update_id"] == decision["update_id"]
    assert (await _result(h, wid)).state == "refunded"
    assert await h.refunded(pi) == 6000
    assert await _accepted_updates(h, wid) == 1

    assert "no pending approvals" in (await cli("approvals", "list", "--output", "table")).stdout
    [closed] = (await cli("approvals", "list", "--all", "--json")).json()["approvals"]
    assert (closed["status"], closed["decided_by"], closed["reason"]) == ("approved", "ana", "ok")
    # After the flow has finished: the same decision reports the recorded outcome; a
    # different one is refused.
    late = await cli("approvals", "approve", request_id, "--as", "ana")
    assert "already recorded" in late.stdout
    denied_late = await cli("approvals", "deny", request_id, "--as", "ana", check=False)
    assert denied_late.refused("APPROVAL_REJECTED"), denied_late.stderr


async def test_deny(harness: Harness, cli: Cli) -> None:
    h = harness
    wid, request_id, pi = await _pending_refund(h, cli, "75.00")
    out = await cli("approvals", "deny", request_id, "--as", "ana", "--reason", "abuse")
    assert "denied" in out.stdout and request_id in out.stdout
    result = await _result(h, wid)
    assert result.state == "denied" and result.reason == "abuse"
    assert await h.refunded(pi) == 0
    rows = await h.hitl_rows(wid)
    assert [(r["status"], r["decided_by"]) for r in rows] == [("denied", "ana")]


async def test_wrong_approver_or_role_is_rejected(harness: Harness, cli: Cli) -> None:
    h = harness
    wid, request_id, pi = await _pending_refund(h, cli, "50.00")
    # mallory holds no key and cannot get one: she is not on the tenant's roster.
    stranger = await cli("approvals", "approve", request_id, "--as", "mallory", check=False)
    assert stranger.refused("APPROVER_KEY_MISSING"), stranger.stderr
    enrol = await cli("approvals", "keys", "create", "--as", "mallory", check=False)
    assert enrol.refused("APPROVER_UNKNOWN") and "mallory is not an approver" in enrol.stderr
    wrong_role = await cli(
        "approvals", "approve", request_id, "--as", "omar", "--json", check=False
    )
    assert wrong_role.refused("APPROVAL_REJECTED") and '"status"' not in wrong_role.stdout
    assert "none of the roles finance" in wrong_role.stderr
    unknown = await cli("approvals", "deny", f"{wid}#refund#9", "--as", "ana", check=False)
    assert unknown.refused("APPROVAL_NOT_FOUND")
    # Nothing reached the history, nothing moved; the right approver still can.
    assert await _accepted_updates(h, wid) == 0
    assert await h.refunded(pi) == 0
    await cli("approvals", "approve", request_id, "--as", "ana")
    assert (await _result(h, wid)).state == "refunded"


async def _hitl_row(db: Database, tenant: str, request_id: str, expires_in: timedelta) -> None:
    now = datetime.now(UTC)
    async with db.tenant(tenant) as s:
        await s.execute(
            "INSERT INTO hitl_requests (request_id, tenant_id, workflow_id, run_id, action, "
            "required_role, amount_minor, currency, status, requested_at, expires_at, details) "
            "VALUES (%s, %s, %s, 'run', 'refund', 'finance', 9900, 'USD', 'pending', %s, %s, %s)",
            (
                request_id,
                tenant,
                f"refund:{tenant}:{request_id}",
                now - timedelta(minutes=5),
                now + expires_in,
                Jsonb({}),
            ),
        )


async def test_list_is_per_tenant_sorted_by_expiry(harness: Harness, cli: Cli) -> None:
    h = harness
    other = await new_tenant(h.db)
    await _hitl_row(h.db, h.tenant, "mine-later", timedelta(hours=3))
    await _hitl_row(h.db, h.tenant, "mine-expired", timedelta(minutes=-1))
    await _hitl_row(h.db, other, "theirs", timedelta(hours=1))

    mine = (await cli("approvals", "list", "--json")).json()["approvals"]
    assert [a["request_id"] for a in mine] == ["mine-expired", "mine-later"]
    assert mine[0]["expired"] is True and mine[1]["expired"] is False
    human = await cli("approvals", "list", "--output", "table")
    assert "expired" in human.stdout and "theirs" not in human.stdout
    theirs = (await cli("approvals", "list", "--tenant", other, "--json")).json()["approvals"]
    assert [a["request_id"] for a in theirs] == ["theirs"]
    # Another tenant's request cannot be decided from this tenant: it is not even found.
    cross = await cli("approvals", "approve", "theirs", "--as", "ana", check=False)
    assert cross.refused("APPROVAL_NOT_FOUND")


async def test_keys_create_list_rotate_revoke(harness: Harness, cli: Cli) -> None:
    h = harness
    home = Path(cli.env["AUTOBIZ_HOME"])
    wid, request_id, _ = await _pending_refund(h, cli, "60.00", keys=())
    # No key yet: refused before anything is sent.
    missing = await cli("approvals", "approve", request_id, "--as", "ana", check=False)
    assert missing.refused("APPROVER_KEY_MISSING"), missing.stderr
    assert "approvals keys create --as ana" in missing.stderr
    first = (await cli("approvals", "keys", "create", "--as", "ana", "--json")).json()
    pem = home / "keys" / h.tenant / "ana" / f"{first['key_id']}.pem"
    assert first["key_file"] == str(pem) and stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert wid in first["notified"]  # the waiting refund was told to re-read the registry
    # Rotation: a new key, the old one still valid until revoked.
    rotated = (await cli("approvals", "keys", "rotate", "--as", "ana", "--json")).json()
    assert rotated["previous"] == [first["key_id"]] and rotated["revoked"] == []
    listed = (await cli("approvals", "keys", "list", "--json")).json()["keys"]
    assert {(k["key_id"], k["state"]) for k in listed} == {
        (first["key_id"], "active"),
        (rotated["key_id"], "active"),
    }
    revoked = (
        await cli("approvals", "keys", "revoke", first["key_id"], "--reason", "lost", "--json")
    ).json()
    assert revoked["state"] == "revoked" and wid in revoked["notified"]
    human = await cli("approvals", "keys", "list", "--output", "table")
    assert "revoked" in human.stdout and rotated["key_id"] in human.stdout
    # The revoked key's file cannot sign any more; the new key approves the request that
    # was already waiting (it learnt the key when told).
    old = await cli(
        "approvals", "approve", request_id, "--as", "ana", "--key-file", str(pem), check=False
    )
    assert old.refused("APPROVER_KEY_MISSING")
    approved = (await cli("approvals", "approve", request_id, "--as", "ana", "--json")).json()
    assert approved["status"] == "approved" and approved["key_id"] == rotated["key_id"]
    assert (await _result(h, wid)).state == "refunded"
    unknown = await cli("approvals", "keys", "revoke", "ak_nope12345", check=False)
    assert unknown.refused("APPROVER_KEY_NOT_FOUND")


async def test_sign_prints_a_decision_for_the_plain_cli(harness: Harness, cli: Cli) -> None:
    h = harness
    wid, request_id, pi = await _pending_refund(h, cli, "60.00", keys=("ana",))
    out = await cli("approvals", "sign", request_id, "--as", "ana", "--reason", "ok")
    decision = Decision.model_validate_json(out.stdout)
    assert decision.proof is not None and decision.request_id == request_id
    assert (decision.approver, decision.approve, decision.reason) == ("ana", True, "ok")
    assert await h.refunded(pi) == 0  # signing sends nothing
    assert (await decide(h.client, wid, decision)).status == "approved"
    assert (await _result(h, wid)).state == "refunded"


async def test_waiting_on_a_denied_refund_exits_refused(harness: Harness, cli: Cli) -> None:
    """`refund request --wait` that an approver denies ends with exit 3 (REFUSED) and its
    result, so a script never reads a denied refund as done."""
    h = harness
    await _keys(cli, "ana", "omar")
    order_id, pi = await h.captured_order(in_ledger=True)
    rid = f"ticket-{uuid.uuid4().hex[:8]}"
    request = ("refund", "request", order_id, "--amount", "75.00", "--payment-intent", pi)
    waiting = asyncio.create_task(
        cli(*request, "--request-id", rid, "--wait", "--json", check=False)
    )
    [row] = await h.pending_rows(f"refund:{h.tenant}:{rid}")
    await cli("approvals", "deny", row["request_id"], "--as", "ana", "--reason", "abuse")
    out = await waiting
    assert out.code == 3, out.stderr  # autobiz.errors.ExitCode.REFUSED
    result = out.json()["result"]
    assert result["state"] == "denied" and result["reason"] == "abuse"
    assert await h.refunded(pi) == 0
