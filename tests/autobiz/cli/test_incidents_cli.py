"""`autobiz incidents list|ack|resolve` over real PostgreSQL through the application role:
the states move open → acknowledged → resolved with who and when, a bad move and an
unknown id exit 2 with their stable codes, and another tenant's incidents stay invisible."""

from __future__ import annotations

import json
import os
import sys

import pytest
from temporalio.testing import ActivityEnvironment

from activities.monitor_activities import MonitorActivities
from autobiz.db.database import Database
from tests.autobiz.cli.support import ROOT, CliResult, run_program
from tests.conftest import new_tenant
from tests.support.postgres import ProvisionedDatabase
from workflows.monitor.models import Diagnosis, Finding, FindingBatch, IncidentRows

pytestmark = pytest.mark.integration


def _finding(ref: str) -> Finding:
    return Finding(
        kind="INV-03",
        check="flow_stuck",
        entity_ref=ref,
        summary=f"{ref} stuck",
        diagnosis=Diagnosis(cause="no event", recommended_action="look at the flow"),
    )


async def _open(db: Database, tenant: str, *refs: str) -> IncidentRows:
    batch = FindingBatch(
        tenant_id=tenant, run_id="monitor:t:1", findings=tuple(_finding(r) for r in refs)
    )
    rows: IncidentRows = await ActivityEnvironment().run(MonitorActivities(db, {}).record, batch)
    return rows


class Cli:
    """The real ``autobiz`` in a subprocess, on the test database as the app role."""

    def __init__(self, pg: ProvisionedDatabase, tenant: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOBIZ_")}
        self.env.update(
            AUTOBIZ_ENV="test",
            AUTOBIZ_APP_DATABASE_URL=pg.app_dsn,
            AUTOBIZ_INGRESS__DEFAULT_TENANT=tenant,
            COLUMNS="200",
        )

    async def __call__(self, *args: str, check: bool = True) -> CliResult:
        argv = [sys.executable, "-m", "autobiz.cli.main", *args]
        return await run_program(
            "autobiz", argv, args, check=check, within=60, env=self.env, cwd=ROOT
        )


async def test_list_ack_resolve(
    database: Database, tenant: str, pg_database: ProvisionedDatabase
) -> None:
    opened = await _open(database, tenant, "order:a:paid", "order:b:paid")
    first, second = (r.incident_id for r in opened.rows)
    other = await new_tenant(database, "o")
    await _open(database, other, "order:z:paid")
    cli = Cli(pg_database, tenant)

    listed = json.loads((await cli("incidents", "list", "--json")).stdout)
    assert sorted(i["incident_id"] for i in listed) == sorted([first, second])  # not other's
    assert listed[0]["diagnosis"]["recommended_action"] == "look at the flow"
    human = (await cli("incidents", "list", "--output", "table")).stdout
    assert "order:a:paid" in human and "INV-03" in human and "look at the flow" in human

    acked = json.loads((await cli("incidents", "ack", str(first), "--by", "ana", "--json")).stdout)
    assert (acked["status"], acked["acknowledged_by"]) == ("acknowledged", "ana")
    assert acked["acknowledged_at"] is not None
    resolved = json.loads(
        (
            await cli(
                "incidents", "resolve", str(first), "--by", "omar", "--note", "fixed", "--json"
            )
        ).stdout
    )
    assert (resolved["status"], resolved["resolved_by"], resolved["resolution"]) == (
        "resolved",
        "omar",
        "fixed",
    )
    # Straight from open to resolved is allowed too.
    await cli("incidents", "resolve", str(second), "--by", "omar")

    live = json.loads((await cli("incidents", "list", "--json")).stdout)
    assert live == []
    every = json.loads(
        (await cli("incidents", "list", "--all", "--kind", "INV-03", "--json")).stdout
    )
    assert {i["status"] for i in every} == {"resolved"} and len(every) == 2

    async with database.tenant(tenant) as s:
        audited = await s.fetch_all(
            "SELECT actor, action FROM audit_log WHERE tenant_id = %s AND action LIKE "
            "'incident.%%' ORDER BY audit_id",
            (tenant,),
        )
    assert [(a["actor"], a["action"]) for a in audited] == [
        ("ana", "incident.acknowledged"),
        ("omar", "incident.resolved"),
        ("omar", "incident.resolved"),
    ]


async def test_bad_transition_and_unknown_incident_have_stable_codes(
    database: Database, tenant: str, pg_database: ProvisionedDatabase
) -> None:
    (row,) = (await _open(database, tenant, "order:c:paid")).rows
    cli = Cli(pg_database, tenant)
    await cli("incidents", "resolve", str(row.incident_id))
    again = await cli("incidents", "ack", str(row.incident_id), check=False)
    assert again.refused("INCIDENT_TRANSITION_INVALID") and again.code == 2
    unknown = await cli("incidents", "ack", "999999999", "--json", check=False)
    assert unknown.refused("INCIDENT_NOT_FOUND") and unknown.code == 2
    # Another tenant's incident is unknown here (RLS), not merely refused.
    other = await new_tenant(database, "o")
    (theirs,) = (await _open(database, other, "order:d:paid")).rows
    hidden = await cli("incidents", "ack", str(theirs.incident_id), check=False)
    assert hidden.refused("INCIDENT_NOT_FOUND") and hidden.code == 2
