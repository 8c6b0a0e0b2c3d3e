"""One `autobiz dev up` stack (demo config, its own home and ports) for the chaos tests:
brought up as a user brings it up, broken by pid (``autobiz.soak.chaos``), driven with
the demo's drivers, judged by the sandbox's provider state and the ledger."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client

from autobiz.db.database import Database
from autobiz.db.dsn import app_dsn
from autobiz.demo.business_day import Case, Timing
from autobiz.devstack.stack import Stack
from autobiz.settings import Settings, get_settings
from autobiz.soak.chaos import ChaosLog
from autobiz.soak.checks import Findings, check, settle
from autobiz.soak.rounds import SoakDay
from autobiz.soak.runner import WEBHOOK_ATTEMPTS, WEBHOOK_RETRY_SECONDS
from autobiz.temporal_client import connect
from tests.support.stack import PORT_SETTINGS, autobiz, free_port

# A killed attempt is retried once its start-to-close timeout (30 s for the money tools)
# has run out; the flows then have the rest of their way to go.
RECOVERY = Timing(workflow_appears=120, state_reached=180, result=240)


@dataclass
class ChaosRig:
    env: dict[str, str]
    settings: Settings
    stack: Stack
    client: Client
    db: Database
    day: SoakDay
    log: ChaosLog = field(default_factory=ChaosLog)
    since: datetime = field(default_factory=lambda: datetime.now(UTC))

    def case(self, name: str, workflow_type: str, expected: str) -> Case:
        return self.day._case(name, workflow_type, expected)

    async def fault_pending(self, path: str) -> bool:
        async with httpx.AsyncClient(
            base_url=f"http://{self.settings.sandbox.host}:{self.settings.sandbox.port}",
            headers=self.day.control.auth_headers,
        ) as http:
            rules = (await http.get("/_control/faults")).json()["rules"]
        return any(r["path"] == path for r in rules)

    async def started_attempt(self, workflow_id: str, tool: str) -> int | None:
        """The attempt of ``tool`` while Temporal shows it started, else None."""
        try:
            desc = await self.client.get_workflow_handle(workflow_id).describe()
        except Exception:  # not started yet
            return None
        for pending in desc.raw_description.pending_activities:
            if (
                pending.activity_type.name == tool
                and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            ):
                return pending.attempt
        return None

    async def in_flight(
        self, workflow_id: Callable[[], str | None], tool: str, path: str, within: float = 240
    ) -> str:
        """Wait until the held request reached the provider (its latency fault consumed)
        and Temporal shows ``tool``'s first attempt started: the workflow id."""

        async def ready() -> str | None:
            wid = workflow_id()
            if wid is None or await self.fault_pending(path):
                return None
            return wid if await self.started_attempt(wid, tool) == 1 else None

        return await eventually(ready, within=within, what=f"{tool} in flight")

    async def runs(self, workflow_id: str) -> int:
        """How many runs Temporal has under ``workflow_id`` (a duplicate flow is two)."""
        n = 0
        async for _ in self.client.list_workflows(f"WorkflowId = '{workflow_id}'"):
            n += 1
        return n

    async def judge(self, cases: list[Case]) -> Findings:
        """Every case as expected; nothing lost, nothing done twice, no invariant broken
        (the sandbox's provider state and the ledger's receipts, ``autobiz.soak.checks``)."""
        tenants = sorted({c.tenant for c in cases})
        control = self.day.control
        await settle(control, self.db, tenants, self.since, webhook_attempts=WEBHOOK_ATTEMPTS)
        found = await check(
            cases,
            control=control,
            clients=self.day.clients,
            db=self.db,
            tenants=tenants,
            since=self.since,
            webhook_attempts=WEBHOOK_ATTEMPTS,
        )
        wrong = [(c.name, c.actual, c.expected, c.problems) for c in cases if not c.ok]
        assert not wrong, wrong
        assert not found.lost, found.lost
        assert not found.duplicated, found.duplicated
        assert not found.invariant_violations, found.invariant_violations
        return found


async def eventually(
    probe: Callable[[], Awaitable[Any]], *, within: float, what: str, every: float = 0.2
) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if value is not None:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(every)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOBIZ_")}
    env["AUTOBIZ_HOME"] = str(home)
    for name in PORT_SETTINGS:
        env[name] = str(free_port())
    env["AUTOBIZ_WORKER__METRICS_BIND"] = f"127.0.0.1:{free_port()}"
    return env


@pytest.fixture(scope="package")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ChaosRig]:
    env = _env(tmp_path_factory.mktemp("chaos") / "home")
    saved = dict(os.environ)
    # The in-process parts (the Stack whose pid files the chaos reads, the demo's
    # drivers and the CLI subprocesses they run) see the stack's settings.
    os.environ.clear()
    os.environ.update(env)
    get_settings.cache_clear()  # read where a client finds the sandbox's token
    try:
        settings = get_settings()
        await asyncio.to_thread(
            autobiz, env, "dev", "up", "--config", str(settings.demo_config_dir)
        )
        stack = Stack(settings, config_dir=settings.demo_config_dir)
        client = await connect(stack.settings)
        async with Database(app_dsn(stack.settings), None, min_size=1, max_size=4) as db:
            day = SoakDay(stack.settings, client, db, lambda _: None, timing=RECOVERY)
            try:
                await day._start()
                await day._approver_keys()
                host = stack.settings.ingress
                await day.control.webhooks(
                    target_url=f"http://{host.host}:{host.port}/webhooks",
                    max_attempts=WEBHOOK_ATTEMPTS,
                    retry_seconds=WEBHOOK_RETRY_SECONDS,
                )
                yield ChaosRig(env, stack.settings, stack, client, db, day)
            finally:
                with contextlib.suppress(Exception):  # the sandbox may be what broke
                    await day.control.clear_faults()
                await day.aclose()
    finally:
        # In-process first: what the chaos restarted is this process's child, and only
        # its parent can reap it (`dev down` from outside would wait on the zombies).
        with contextlib.suppress(Exception):
            await asyncio.to_thread(Stack(get_settings(), config_dir=None).down)
        await asyncio.to_thread(autobiz, env, "dev", "down", check=False)
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()
