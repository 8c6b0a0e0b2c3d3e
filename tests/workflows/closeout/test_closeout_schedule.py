"""The closeout's schedule (per tenant, in its time zone, at its local time), a missed day
caught up by the schedule's run, and the report's signed link served by the ingress
(tampered, expired and cross-tenant links refused)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from temporalio.client import ScheduleActionExecutionStartWorkflow

from autobiz.closeout_links import ReportLinks
from autobiz.settings import IngressSettings
from ingress.app import IngressDeps, create_app
from ingress.tenants import StaticWebhookSecrets
from starters.closeout import closeout_input, ensure_closeout_schedule
from starters.flows import flow_status
from tests.ingress.conftest import serve_http
from tests.ingress.conftest import tenant_config as webhook_config
from tests.replay.recorder import maybe_record
from tests.workflows.closeout.support import close_day, local_today, report_of
from tests.workflows.support import Harness
from workflows.closeout.models import CloseoutResult
from workflows.ids import DAILY_CLOSEOUT, closeout_schedule_id, closeout_workflow_id

pytestmark = pytest.mark.integration


async def test_the_schedule_fires_at_local_time_in_the_tenant_zone(harness: Harness) -> None:
    h = harness
    schedule = h.client.get_schedule_handle(closeout_schedule_id(h.tenant))
    try:
        made = await ensure_closeout_schedule(h.client, h.config, task_queue=h.task_queue)
        again = await ensure_closeout_schedule(h.client, h.config, task_queue=h.task_queue)
        assert (made, again) == ("created", "unchanged")
        described = await schedule.describe()
        spec = described.schedule.spec
        assert spec.time_zone_name == "America/New_York" == h.config.closeout.timezone
        (calendar,) = spec.calendars
        assert [r.start for r in calendar.hour] == [0]
        assert [r.start for r in calendar.minute] == [10]
        policy = described.schedule.policy
        assert policy.catchup_window == timedelta(days=7)
        upcoming = described.info.next_action_times[0].astimezone(ZoneInfo("America/New_York"))
        assert (upcoming.hour, upcoming.minute) == (0, 10)

        # Triggered (as `temporal schedule trigger` does): the run closes yesterday.
        await schedule.trigger()
        action = None
        for _ in range(100):
            info = (await schedule.describe()).info
            if info.recent_actions:
                action = info.recent_actions[0].action
                break
            await asyncio.sleep(0.1)
        assert isinstance(action, ScheduleActionExecutionStartWorkflow)
        result = await h.client.get_workflow_handle(
            action.workflow_id, result_type=CloseoutResult
        ).result()
        yesterday = local_today(h) - timedelta(days=1)
        assert [d.day for d in result.closed][-1] == yesterday
    finally:
        await schedule.delete()


async def test_a_missed_day_is_caught_up(harness: Harness) -> None:
    h = harness
    yesterday = local_today(h) - timedelta(days=1)
    closed_before = yesterday - timedelta(days=2)
    await close_day(h, closed_before)  # closed on time; the next day was missed

    run = await h.client.start_workflow(
        DAILY_CLOSEOUT.type,
        closeout_input(h.config, principal="test:schedule").model_copy(update={"catchup_days": 2}),
        id=closeout_workflow_id(h.tenant, "scheduled-test"),
        task_queue=h.task_queue,
        result_type=CloseoutResult,
    )
    result = await run.result()

    missed = yesterday - timedelta(days=1)
    assert [(d.day, d.workflow_id) for d in result.closed] == [
        (missed, closeout_workflow_id(h.tenant, missed.isoformat())),
        (yesterday, closeout_workflow_id(h.tenant, yesterday.isoformat())),
    ]
    assert (await report_of(h, missed))["runs"] == 1
    assert (await report_of(h, closed_before))["runs"] == 1  # not closed twice
    status = await flow_status(h.client, run.id)
    assert status.state == "completed"
    assert status.detail["days"] == [missed.isoformat(), yesterday.isoformat()]
    await maybe_record(h.client, run.id, "daily_closeout_caught_up")


@pytest.fixture
async def ingress_url(harness: Harness) -> AsyncIterator[str]:
    deps = IngressDeps(
        db=harness.db,
        secrets=StaticWebhookSecrets({harness.tenant: webhook_config(harness.tenant)}),
        settings=IngressSettings(),
        report_links=ReportLinks.from_settings(harness.sandbox.settings),
    )
    async with serve_http(create_app(deps)) as url:
        yield url


def _served(link: str, base: str) -> str:
    """The link as the ingress under test serves it (same path and query)."""
    return base + link[link.index("/reports/") :]


async def test_the_report_link_works_and_a_tampered_or_expired_one_is_refused(
    harness: Harness, ingress_url: str
) -> None:
    h = harness
    day = local_today(h)
    result = await close_day(h, day)
    assert result.report_url is not None
    async with httpx.AsyncClient() as http:
        good = await http.get(_served(result.report_url, ingress_url))
        assert good.status_code == 200 and good.headers["content-type"].startswith("text/csv")
        assert good.headers["cache-control"] == "no-store"
        assert good.text.startswith("section,key,currency,value,detail\n")
        assert hashlib.sha256(good.content).hexdigest() == result.csv_sha256

        link = _served(result.report_url, ingress_url)
        other_day = link.replace(f"/{day}.csv", f"/{day - timedelta(days=1)}.csv")
        other_tenant = link.replace(f"/closeout/{h.tenant}/", "/closeout/someone-else/")
        bad_sig = link[:-1] + ("0" if link[-1] != "0" else "1")
        later = link.replace("expires=", "expires=9")
        for tampered in (other_day, other_tenant, bad_sig, later):
            refused = await http.get(tampered)
            assert refused.status_code == 403, tampered
            assert refused.json() == {"error": "invalid or expired report link"}

        links = ReportLinks.from_settings(h.sandbox.settings)
        expired, _ = links.url(
            h.tenant, day, timedelta(minutes=5), now=datetime.now(UTC) - timedelta(hours=1)
        )
        assert (await http.get(_served(expired, ingress_url))).status_code == 403
        unsigned = await http.get(link.replace("sig=", "nosig="))
        assert unsigned.status_code == 403
        # A good signature opens only what the tenant's own RLS scope holds: another
        # tenant's link for the same day finds no report of theirs (and never this one).
        theirs, _ = links.url("t-nobody-here", day, timedelta(minutes=5))
        assert (await http.get(_served(theirs, ingress_url))).status_code == 404
