"""`autobiz replay` as an operator runs it: a separate process against the dev server,
on workflows the test has just run (one closed, one still open, one written by changed
code)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from tests.replay.changed_workflow import OrderFulfillWithExtraTimer
from tests.workflows.support import Harness, eventually, start_fulfil
from workflows.ids import REFUND

pytestmark = pytest.mark.integration


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.stdout)
        return data


async def autobiz(h: Harness, *args: str, env: dict[str, str] | None = None) -> Run:
    host, port = h.client.service_client.config.target_host.rsplit(":", 1)
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUTOBIZ_")}
    base.update(AUTOBIZ_ENV="test", AUTOBIZ_TEMPORAL__HOST=host, AUTOBIZ_TEMPORAL__PORT=port)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autobiz.cli.main",
        *args,
        env={**base, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def _refund(h: Harness, amount_minor: int) -> WorkflowHandle[Any, Any]:
    order_id, pi = await h.captured_order("100.00")
    return await h.request_refund(order_id, pi, amount_minor)


async def test_closed_run_replays_deterministically(harness: Harness) -> None:
    h = harness
    handle = await _refund(h, 2000)
    assert (await handle.result()).state == "refunded"
    described = await handle.describe()

    plain = await autobiz(h, "replay", handle.id)
    assert plain.code == 0, plain.stderr
    assert plain.stdout.startswith(f"deterministic: {handle.id} (run {described.run_id}, Refund")

    pinned = await autobiz(h, "replay", handle.id, "--run-id", described.run_id, "--json")
    assert pinned.code == 0, pinned.stderr
    report = pinned.report()
    assert report["deterministic"] is True and report["code"] is None
    assert report["run_id"] == described.run_id and report["workflow_type"] == REFUND.type
    assert report["events"] == len((await handle.fetch_history()).events)

    # Another key than the one the history was written with: the codec's code, exit 2.
    other_key = {
        "AUTOBIZ_KERNEL__CODEC_KEYS": json.dumps({"k-other": "A" * 43 + "="}),
        "AUTOBIZ_KERNEL__CODEC_ACTIVE_KEY": "k-other",
    }
    wrong = await autobiz(h, "replay", handle.id, env=other_key)
    assert wrong.code == 2 and "error[CODEC_UNKNOWN_KEY]" in wrong.stderr


async def test_open_run_replays_up_to_its_last_event(harness: Harness) -> None:
    h = harness
    handle = await _refund(h, 6000)  # above the threshold: waits for finance
    await h.status_when(handle.id, lambda s: s.approval is not None)
    try:
        run = await autobiz(h, "replay", handle.id, "--json")
        assert run.code == 0, run.stderr
        assert run.report()["deterministic"] is True
    finally:
        await handle.terminate("test over")


async def test_history_from_changed_code_is_nondeterministic(harness: Harness) -> None:
    """A run written by a changed OrderFulfill (a timer first) does not replay under the
    current code: exit 1 with REPLAY_NONDETERMINISTIC."""
    h = harness
    queue = f"tq-changed-{uuid.uuid4()}"
    order_id = await h.seed_order("25.00")
    async with Worker(h.client, task_queue=queue, workflows=[OrderFulfillWithExtraTimer]):
        handle = await start_fulfil(h.client, h.config, queue, order_id)

        async def timer_started() -> bool | None:
            events = (await handle.fetch_history()).events
            return any(e.HasField("timer_started_event_attributes") for e in events) or None

        await eventually(timer_started, what="the changed workflow's first timer")
    try:
        plain = await autobiz(h, "replay", handle.id)
        assert plain.code == 1
        assert "error[REPLAY_NONDETERMINISTIC]" in plain.stderr
        assert "Nondeterminism" in plain.stderr and "Traceback" not in plain.stderr

        as_json = await autobiz(h, "replay", handle.id, "--json")
        assert as_json.code == 1
        report = as_json.report()
        assert report["deterministic"] is False and report["code"] == "REPLAY_NONDETERMINISTIC"
        assert "Nondeterminism" in report["message"]
    finally:
        await handle.terminate("test over")


async def test_unknown_workflow_and_run(harness: Harness) -> None:
    h = harness
    missing = await autobiz(h, "replay", f"order:{h.tenant}:no-such-order")
    assert missing.code == 2 and "error[WORKFLOW_NOT_FOUND]" in missing.stderr
    as_json = await autobiz(h, "replay", f"order:{h.tenant}:no-such-order", "--json")
    assert as_json.code == 2 and as_json.report()["code"] == "WORKFLOW_NOT_FOUND"

    handle = await _refund(h, 1000)
    await handle.result()
    wrong_run = await autobiz(h, "replay", handle.id, "--run-id", str(uuid.uuid4()))
    assert wrong_run.code == 2 and "error[WORKFLOW_NOT_FOUND]" in wrong_run.stderr
