"""A starting worker gives every tenant with Reconciliation enabled its schedule, as
the tenant's config says, once (DESIGN §4: schedules per tenant)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import ScheduleIntervalSpec
from temporalio.testing import WorkflowEnvironment

from autobiz.business_config import load_configs
from autobiz.settings import Environment, Settings, TemporalSettings
from autobiz.temporal_client import connect
from tests.support.postgres import ProvisionedDatabase
from workers.worker import ensure_schedules, run_worker
from workflows.ids import reconcile_schedule_id

pytestmark = pytest.mark.integration
DEMO = Path(__file__).resolve().parents[2] / "config" / "demo-shop.yaml"


def _configs(tmp_path: Path, enabled: str, disabled: str) -> Path:
    text = DEMO.read_text()
    (tmp_path / f"{enabled}.yaml").write_text(
        text.replace("tenant: demo-shop", f"tenant: {enabled}")
    )
    off = text.replace("tenant: demo-shop", f"tenant: {disabled}").replace(
        "  reconciliation:\n    enabled: true", "  reconciliation:\n    enabled: false"
    )
    assert off != text.replace("tenant: demo-shop", f"tenant: {disabled}")
    (tmp_path / f"{disabled}.yaml").write_text(off)
    return tmp_path


async def test_worker_start_creates_each_tenants_schedule_once(
    temporal_env: WorkflowEnvironment,
    pg_database: ProvisionedDatabase,
    tenant: str,
    task_queue: str,
    tmp_path: Path,
) -> None:
    other = f"{tenant}-off"
    config_dir = _configs(tmp_path, tenant, other)
    target = temporal_env.client.service_client.config.target_host
    client = await connect(Settings(env=Environment.TEST), target_host=target)
    host, _, port = target.rpartition(":")
    settings = Settings(
        env=Environment.TEST,
        config_dir=config_dir,
        app_database_url=pg_database.app_dsn,  # type: ignore[arg-type]
        temporal=TemporalSettings(host=host, port=int(port), task_queue=task_queue),
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, on_ready=ready.set))
    try:
        await asyncio.wait_for(ready.wait(), timeout=60)
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=60)

    desc = await client.get_schedule_handle(reconcile_schedule_id(tenant)).describe()
    spec = desc.schedule.spec.intervals
    assert [i.every for i in spec] == [timedelta(hours=1)]
    assert isinstance(spec[0], ScheduleIntervalSpec)
    # A tenant that has Reconciliation disabled gets none.
    ids = [s.id async for s in await client.list_schedules()]
    assert reconcile_schedule_id(other) not in ids
    # Starting again (or a second worker) changes nothing.
    again = await ensure_schedules(client, load_configs(config_dir), task_queue)
    assert again == {tenant: "unchanged"}
    await client.get_schedule_handle(reconcile_schedule_id(tenant)).delete()
