"""`autobiz closeout run|report` on the full stack: a day run and re-run from the CLI,
one tenant's report (its rows only, a fresh link), and the cross-tenant view only through
the named admin path, audited in every tenant it read."""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.closeout_activities import ADMIN_ACTION, CloseoutActivities, fetch_metrics
from autobiz.closeout_links import ReportLinks
from tests.autobiz.cli.support import ROOT, in_process_env, run_program
from tests.autobiz.cli.support import run_in_process as _cli
from tests.conftest import new_tenant
from tests.support.postgres import ProvisionedDatabase
from tests.workflows.closeout.support import fulfilled_order, local_today
from tests.workflows.support import Harness
from workflows.closeout.models import CloseoutWrite, DayWindow, MetricRow

pytestmark = pytest.mark.integration


async def _refused(env: dict[str, str], code: str, exit_code: int, *args: str) -> None:
    """The real ``autobiz`` in a subprocess: refused with ``error[code]`` and its exit."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("AUTOBIZ_")} | env
    argv = [sys.executable, "-m", "autobiz.cli.main", *args]
    result = await run_program("autobiz", argv, args, check=False, within=60, env=full, cwd=ROOT)
    assert result.code == exit_code and result.refused(code), result


async def _other_tenant_day(h: Harness) -> str:
    """Another tenant with a closed day of its own (written as the closeout writes it)."""
    other = await new_tenant(h.db, "o")
    day = local_today(h)
    window = DayWindow.of(day, "America/New_York")
    write = CloseoutWrite(
        tenant_id=other,
        day=day,
        timezone="America/New_York",
        window_start=window.start,
        window_end=window.end,
        run_id=f"closeout:{other}:{day}",
        metrics=(MetricRow(metric="orders:USD", value=Decimal(7)),),
        csv="section,key,currency,value,detail\n",
    )
    links = ReportLinks.from_settings(h.sandbox.settings)
    await ActivityEnvironment().run(CloseoutActivities(h.db, links).write, write)
    return other


async def _audit(h: Harness, tenant: str) -> list[dict[str, Any]]:
    async with h.db.tenant(tenant) as s:
        return await s.fetch_all(
            "SELECT actor, action, outcome, detail FROM audit_log WHERE tenant_id = %s "
            "AND action = %s ORDER BY audit_id",
            (tenant, ADMIN_ACTION),
        )


async def test_run_report_and_the_audited_admin_view(
    harness: Harness,
    temporal_env: WorkflowEnvironment,
    pg_database: ProvisionedDatabase,
    tmp_path: Path,
) -> None:
    h = harness
    env = in_process_env(
        h, temporal_env, pg_database, tmp_path, AUTOBIZ_DATABASE_URL=pg_database.admin_dsn
    )
    day = local_today(h)
    await fulfilled_order(h, "25.00")
    other = await _other_tenant_day(h)

    ran = json.loads(
        (await _cli(env, "closeout", "run", "--date", str(day), "--wait", "--json")).output
    )
    assert ran["day"] == str(day) and ran["runs"] == 1 and ran["drifts"] == []
    again = json.loads(
        (await _cli(env, "closeout", "run", "--date", str(day), "--wait", "--json")).output
    )
    assert again["workflow_id"] == ran["workflow_id"] == f"closeout:{h.tenant}:{day}"
    assert again["csv_sha256"] == ran["csv_sha256"] and again["runs"] == 2
    human = (await _cli(env, "closeout", "run", "--date", str(day), "--wait")).output
    assert f"{day} closed (write #3)" in human and "/reports/closeout/" in human

    # One tenant's report: its rows only (RLS), each report with a fresh signed link.
    mine = json.loads(
        (
            await _cli(env, "closeout", "report", "--from", str(day), "--to", str(day), "--json")
        ).output
    )
    assert {m["tenant_id"] for m in mine["metrics"]} == {h.tenant}
    assert {"metric": "gross_captured_minor:USD", "value": "2500"}.items() <= {
        k: v
        for m in mine["metrics"]
        if m["metric"] == "gross_captured_minor:USD"
        for k, v in m.items()
    }.items()
    assert [r["runs"] for r in mine["reports"]] == [3]
    assert f"/reports/closeout/{h.tenant}/{day}.csv?expires=" in mine["reports"][0]["link"]
    as_csv = (
        await _cli(env, "closeout", "report", "--from", str(day), "--to", str(day), "--csv")
    ).output
    assert as_csv.startswith("tenant_id,day,metric,currency,value\n")
    assert f"{h.tenant},{day},gross_captured_minor:USD,USD,2500" in as_csv
    assert other not in as_csv
    # Nor can the app role reach the other tenant's rows from this tenant's scope.
    assert [
        r for r in await fetch_metrics(h.db, h.tenant, day, day) if r["tenant_id"] == other
    ] == []

    # Cross-tenant: refused without a reason; with one, both tenants, audited in each.
    await _refused(env, "ADMIN_REASON_REQUIRED", 2, "closeout", "report", "--all-tenants")
    assert await _audit(h, h.tenant) == []
    everyone = json.loads(
        (
            await _cli(
                env,
                "closeout",
                "report",
                "--all-tenants",
                "--from",
                str(day),
                "--to",
                str(day),
                "--by",
                "ana",
                "--reason",
                "month-end review",
                "--json",
            )
        ).output
    )
    tenants = {m["tenant_id"] for m in everyone["metrics"]}
    assert {h.tenant, other} <= tenants
    for t in (h.tenant, other):
        (row,) = await _audit(h, t)
        assert row["actor"] == "ana" and row["outcome"] == "read"
        assert row["detail"]["from"] == row["detail"]["to"] == str(day)
        assert row["detail"]["reason"] == "month-end review"
        assert everyone["scope"].endswith(f"audit use {row['detail']['use_id']})")

    await _refused(
        env, "WINDOW_INVALID", 2, "closeout", "report", "--from", str(day), "--to", "2000-01-01"
    )
    await _refused(env, "WINDOW_INVALID", 2, "closeout", "run", "--date", "yesterday")
