"""`--output table|plain|json` on the list commands: in a pipe each row is one
tab-separated line under a header, ids whole (``grep`` finds them); a table at 80
columns never folds an id; ``--json``/``--output json`` errors, the parser's included,
are one JSON document with the stable code."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, date, datetime, timedelta

import pytest
from psycopg.types.json import Jsonb

from autobiz.approver_keys import register_key
from autobiz.db.database import Database
from tests.autobiz.cli.support import Cli
from tests.workflows.support import Harness

pytestmark = pytest.mark.e2e

LONG = "r-" + "x" * 60 + "-" + "y" * 30  # longer than a whole 80-column line


def _plain(stdout: str, header: list[str]) -> list[list[str]]:
    """The rows of plain output, after checking its header line."""
    lines = stdout.splitlines()
    assert lines[0].split("\t") == header, stdout
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(r) == len(header) for r in rows), stdout
    return rows


async def _hitl(db: Database, tenant: str, request_id: str) -> None:
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
                now + timedelta(hours=1),
                Jsonb({}),
            ),
        )


async def test_approvals_list_plain_in_a_pipe_table_at_80(harness: Harness, cli: Cli) -> None:
    h = harness
    await _hitl(h.db, h.tenant, LONG)
    await _hitl(h.db, h.tenant, "short-1")
    piped = await cli("approvals", "list")  # stdout is a pipe: plain is the default
    header = ["request", "workflow", "action", "amount", "role", "age", "expires in", "esc"]
    rows = _plain(piped.stdout, header)
    assert {r[0] for r in rows} == {LONG, "short-1"}
    line = next(x for x in piped.stdout.splitlines() if LONG in x)
    assert f"refund:{h.tenant}:{LONG}" in line  # the workflow id whole on the same line
    assert "┃" not in piped.stdout and "│" not in piped.stdout
    # --output json and --json are one and the same document.
    as_json = (await cli("approvals", "list", "--output", "json")).json()
    alias = (await cli("approvals", "list", "--json")).json()
    assert as_json.keys() == alias.keys() == {"tenant_id", "approvals"}
    ids = [[a["request_id"] for a in doc["approvals"]] for doc in (as_json, alias)]
    assert ids[0] == ids[1] and set(ids[0]) == {LONG, "short-1"}
    # A table at 80 columns: every id whole on one line (the long one on a line of its own).
    table = await cli("approvals", "list", "--output", "table", COLUMNS="80")
    lines = table.stdout.splitlines()
    for wanted in (LONG, "short-1", f"refund:{h.tenant}:short-1"):
        assert any(wanted in x for x in lines), table.stdout
    # Only the short id (the long one closed): a box, its ids unfolded.
    async with h.db.tenant(h.tenant) as s:
        await s.execute(
            "UPDATE hitl_requests SET status = 'expired' WHERE request_id = %s", (LONG,)
        )
    boxed = await cli("approvals", "list", "--output", "table", COLUMNS="80")
    assert "│" in boxed.stdout and "short-1" in boxed.stdout
    assert any(f"refund:{h.tenant}:short-1" in x for x in boxed.stdout.splitlines())
    assert all(len(x) <= 80 for x in boxed.stdout.splitlines())


async def test_keys_list_plain(harness: Harness, cli: Cli) -> None:
    h = harness
    approver = "approver-" + "a" * 90
    public = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    await register_key(h.db, h.tenant, approver, public, key_id="ak_test12345", created_by="t")
    rows = _plain(
        (await cli("approvals", "keys", "list")).stdout,
        ["key", "approver", "state", "created", "expires", "revoked"],
    )
    assert [r[:3] for r in rows] == [["ak_test12345", approver, "active"]]
    table = await cli("approvals", "keys", "list", "--output", "table", COLUMNS="80")
    assert any(approver in x for x in table.stdout.splitlines()), table.stdout


async def test_incidents_and_reconcile_list_plain(harness: Harness, cli: Cli) -> None:
    h = harness
    entity = "order:" + "9" * 90 + ":paid"
    async with h.db.tenant(h.tenant) as s:
        await s.execute(
            "INSERT INTO incidents (tenant_id, kind, check_name, entity_ref, summary, "
            "first_run_id, last_run_id) VALUES (%s, 'INV-03', 'flow_stuck', %s, 'stuck', "
            "'run-1', 'run-1')",
            (h.tenant, entity),
        )
        await s.execute(
            "INSERT INTO reconciliation (tenant_id, run_id, kind, entity_ref, financial, "
            "expected, actual, action) VALUES (%s, 'run-1', 'missing_refund', %s, true, "
            "'{}', '{}', 'report')",
            (h.tenant, entity),
        )
    incidents = _plain(
        (await cli("incidents", "list")).stdout,
        ["id", "kind", "check", "entity", "status", "seen", "last seen"],
    )
    assert [r[3] for r in incidents] == [entity]
    drift = _plain(
        (await cli("reconcile", "list")).stdout,
        ["id", "kind", "order", "entity", "fin.", "amount", "status", "action", "seen"],
    )
    assert [(r[1], r[3]) for r in drift] == [("missing_refund", entity)]
    for args in (("incidents", "list"), ("reconcile", "list")):
        table = await cli(*args, "--output", "table", COLUMNS="80")
        assert any(entity in x for x in table.stdout.splitlines()), table.stdout


async def test_closeout_report_and_wismo_list_plain(harness: Harness, cli: Cli) -> None:
    h = harness
    day = date.today() - timedelta(days=1)
    async with h.db.tenant(h.tenant) as s:
        await s.execute(
            "INSERT INTO daily_metrics (tenant_id, day, metric, value, currency) "
            "VALUES (%s, %s, 'revenue_minor', 12345, 'USD')",
            (h.tenant, day),
        )
    rows = _plain(
        (await cli("closeout", "report")).stdout, ["tenant", "day", "metric", "currency", "value"]
    )
    assert [r[:3] for r in rows] == [[h.tenant, day.isoformat(), "revenue_minor"]]
    header = ["started", "message", "order", "state", "outcome", "review", "workflow id"]
    assert _plain((await cli("wismo", "list")).stdout, header) == []
    assert (await cli("wismo", "list", "--output", "json")).json()["runs"] == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("approvals", "show", "--json"), "Missing argument"),
        (("approvals", "list", "--output", "json", "--bogus"), "No such option"),
        (("approvals", "list", "--output=json", "--limit", "0"), "--limit"),
        (("incidents", "list", "--json", "--output", "xml"), "--output"),
        (("nope", "--json"), "No such command"),
    ],
)
async def test_usage_errors_under_json_are_one_json_document(
    offline: Cli, args: tuple[str, ...], words: str
) -> None:
    result = await offline(*args, check=False)
    assert result.code == 2 and result.refused("USAGE"), result.stderr
    error = json.loads(result.stdout)["error"]  # the whole of stdout is one document
    assert error["code"] == "USAGE" and error["exit_code"] == 2
    assert words in error["message"] and error["hint"]


async def test_a_bad_log_level_is_a_json_error_too(offline: Cli) -> None:
    result = await offline("approvals", "list", "--json", check=False, AUTOBIZ_LOG_LEVEL="loud")
    assert result.refused("SETTINGS_INVALID"), result.stderr
    assert json.loads(result.stdout)["error"]["code"] == "SETTINGS_INVALID"
