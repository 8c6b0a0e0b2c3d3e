"""The gate inside a real workflow on the dev server: every refusal and bound stops the
call before its activity runs, and the trace (a workflow query) says why. Also: the raw
history holds no secret when the client uses the codec, and the run replays."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.kernel_activities import KernelActivities
from autobiz.db.database import Database
from autobiz.ledger.traces import TraceStore
from autobiz.settings import Settings
from autobiz.temporal_client import connect, data_converter
from kernel.cost import ModelPrice, PriceTable
from kernel.policy import Bounds, LoopPolicy, RunPolicy
from kernel.redaction import find_leaks
from kernel.state import RunSummary
from tests.kernel.corpus import SECRETS
from tests.workflows_kernel.gate_workflow import (
    Call,
    GateTestInput,
    GateTestResult,
    GateTestWorkflow,
)
from tests.workflows_kernel.toolbox import TestTools

pytestmark = pytest.mark.integration

SETTINGS = Settings()


@pytest.fixture
async def kclient(temporal_env: WorkflowEnvironment) -> AsyncIterator[Client]:
    """A client made by the one ``connect()``: pydantic, AES-GCM codec, redacted failures."""
    yield await connect(SETTINGS, target_host=temporal_env.client.service_client.config.target_host)


def policy(tenant: str = "test-tenant", **bounds: Any) -> RunPolicy:
    base: dict[str, Any] = dict(
        max_steps=50,
        max_tool_calls=50,
        max_wall_time=timedelta(hours=1),
        max_tokens=10_000,
        max_cost_usd=Decimal("1"),
    )
    base.update(bounds)
    return RunPolicy(
        tenant_id=tenant,
        workflow_type="gate_test",
        tools=frozenset(
            {"test.read@1", "test.write@1", "test.paid@1", "test.llm@1", "test.fail@1"}
        ),
        scopes=frozenset({"test:read", "test:write", "test:llm"}),
        bounds=Bounds(**base),
        loop=LoopPolicy(threshold=3),
        prices=PriceTable(
            models={
                "test-model": ModelPrice(
                    input_per_mtok_micros=1_000_000, output_per_mtok_micros=2_000_000
                )
            },
            provider_call_micros={"testpaid": 1000},
        ),
    )


async def run(
    client: Client,
    task_queue: str,
    tools: TestTools,
    input: GateTestInput,
    extra: Sequence[Callable[..., Any]] = (),
) -> tuple[GateTestResult, RunSummary, Any]:
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[GateTestWorkflow],
        activities=[*tools.all(), *extra],
    ):
        handle = await client.start_workflow(
            GateTestWorkflow.run,
            input,
            id=f"gate-test-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        result = await handle.result()
        summary = await handle.query(GateTestWorkflow.kernel_trace)
    return result, summary, handle


def read(key: str, step: str = "s", **kw: Any) -> Call:
    return Call(tool="test.read", input={"key": key}, step=step, **kw)


def last_refusal(summary: RunSummary):
    return [e for e in summary.entries if e.kind in ("gate_denied", "run_terminated")][-1]


async def test_tool_unknown(kclient: Client, task_queue: str) -> None:
    tools = TestTools()
    calls = [
        Call(tool="test.read", version="7", input={"key": "a"}, step="x"),
        Call(tool="test.nope", input={}, step="y"),
    ]
    result, summary, _ = await run(
        kclient, task_queue, tools, GateTestInput(policy=policy(), calls=calls)
    )
    assert result.outcomes == ["TOOL_UNKNOWN", "TOOL_UNKNOWN"]
    assert sum(tools.calls.values()) == 0
    entry = last_refusal(summary)
    assert entry.outcome == "TOOL_UNKNOWN" and entry.detail["tool"] == "test.nope@1"


async def test_only_an_internal_read_runs_as_a_local_activity(
    kclient: Client, task_queue: str
) -> None:
    """``local=True``: an internal read runs inside the workflow task (a marker, no
    activity task); a write or a provider's tool is refused before it runs."""
    tools = TestTools()
    calls = [
        read("a", local=True),
        Call(tool="test.write", input={"key": "w"}, step="w", local=True),
        Call(tool="test.paid", input={"key": "p"}, step="p", local=True),
    ]
    result, _, handle = await run(
        kclient, task_queue, tools, GateTestInput(policy=policy(), calls=calls)
    )
    assert result.outcomes == ["ok", "NOT_LOCAL", "NOT_LOCAL"]
    assert dict(tools.calls) == {"test.read@1": 1}
    history = await handle.fetch_history()
    assert not any(e.HasField("activity_task_scheduled_event_attributes") for e in history.events)
    markers = [
        e.marker_recorded_event_attributes.marker_name
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
    ]
    assert markers == ["core_local_activity"]


async def test_schema_invalid(kclient: Client, task_queue: str) -> None:
    tools = TestTools()
    calls = [
        Call(tool="test.read", input={"key": "a", "admin": True}, step="x"),
        Call(tool="test.read", input={"key": 5}, step="y"),
    ]
    result, summary, _ = await run(
        kclient, task_queue, tools, GateTestInput(policy=policy(), calls=calls)
    )
    assert result.outcomes == ["SCHEMA_INVALID", "SCHEMA_INVALID"]
    assert tools.calls["test.read@1"] == 0
    entry = last_refusal(summary)
    assert entry.outcome == "SCHEMA_INVALID" and entry.detail["errors"][0]["loc"] == "key"
    assert summary.denials == {"SCHEMA_INVALID": 2}


async def test_permission_denied(kclient: Client, task_queue: str) -> None:
    tools = TestTools()
    calls = [Call(tool="test.secret", input={"key": "a"}, step="x")]
    result, summary, _ = await run(
        kclient, task_queue, tools, GateTestInput(policy=policy(), calls=calls)
    )
    assert result.outcomes == ["PERMISSION_DENIED"]
    assert tools.calls["test.secret@1"] == 0
    detail = last_refusal(summary).detail
    assert detail["principal"] == "test:operator" and detail["tenant"] == "test-tenant"
    assert detail["tool"] == "test.secret@1" and detail["action"] == "WRITE"


async def test_bound_max_steps(kclient: Client, task_queue: str) -> None:
    tools = TestTools()
    inp = GateTestInput(policy=policy(max_steps=2), calls=[read("a"), read("b")], state_changes=2)
    result, summary, _ = await run(kclient, task_queue, tools, inp)
    assert result.outcomes == ["RUN_TERMINATED", "RUN_TERMINATED"]
    assert tools.calls["test.read@1"] == 0
    assert summary.termination_reason == "max_steps"
    assert [e.kind for e in summary.entries].count("run_terminated") == 1


async def test_bound_max_tool_calls(kclient: Client, task_queue: str) -> None:
    tools = TestTools()
    calls = [read("a"), Call(tool="test.write", input={"key": "b"}, step="w")]
    result, summary, _ = await run(
        kclient, task_queue, tools, GateTestInput(policy=policy(max_tool_calls=1), calls=calls)
    )
    assert result.outcomes == ["ok", "RUN_TERMINATED"]
    assert tools.calls["test.write@1"] == 0
    assert summary.termination_reason == "max_tool_calls"
    assert last_refusal(summary).detail["limit"] == "1"


@pytest.mark.parametrize(
    ("bounds", "call", "reason"),
    [
        pytest.param(
            {"max_wall_time": timedelta(seconds=1)},
            read("a", sleep_s=1.5),
            "max_wall_time",
            id="max_wall_time",
        ),
        pytest.param(
            {"max_tokens": 100},
            Call(tool="test.llm", input={"prompt": "hi", "max_tokens": 500}, step="draft"),
            "max_tokens",
            id="max_tokens",
        ),
        pytest.param(
            {"max_cost_usd": Decimal("0.0005")},
            Call(tool="test.paid", input={"key": "a"}, step="p"),
            "max_cost",
            id="max_cost",
        ),
    ],
)
async def test_bound_stops_the_one_call_before_it_runs(
    kclient: Client, task_queue: str, bounds: dict[str, Any], call: Call, reason: str
) -> None:
    """A call that would pass the bound is refused: its activity never runs."""
    tools = TestTools()
    inp = GateTestInput(policy=policy(**bounds), calls=[call])
    result, summary, _ = await run(kclient, task_queue, tools, inp)
    assert result.outcomes == ["RUN_TERMINATED"]
    assert tools.calls[f"{call.tool}@1"] == 0
    assert summary.termination_reason == reason


async def test_loop_detection(kclient: Client, task_queue: str) -> None:
    tools = TestTools()
    calls = [read("same"), read("same"), read("same"), read("other")]
    result, summary, _ = await run(
        kclient, task_queue, tools, GateTestInput(policy=policy(), calls=calls)
    )
    assert result.outcomes == ["ok", "ok", "RUN_TERMINATED", "RUN_TERMINATED"]
    assert tools.calls["test.read@1"] == 2  # the third identical call never ran
    assert summary.termination_reason == "loop_detected"
    terminated = [e for e in summary.entries if e.kind == "run_terminated"]
    assert len(terminated) == 1 and "3 x [test.read@1]" in terminated[0].detail["observed"]


async def test_allowed_calls_are_traced_with_keys_and_cost(
    kclient: Client, task_queue: str, database: Database, tenant: str
) -> None:
    tools = TestTools()
    calls = [
        read("a", step="one"),
        Call(tool="test.llm", input={"prompt": "p", "max_tokens": 100}, step="two"),
        Call(tool="test.paid", input={"key": "b"}, step="three"),
    ]
    inp = GateTestInput(policy=policy(tenant), calls=calls, persist=True)
    result, summary, handle = await run(
        kclient, task_queue, tools, inp, extra=[KernelActivities(database).persist_trace]
    )
    assert result.outcomes == ["ok", "ok", "ok"]
    assert summary.tool_calls == 3 and summary.tokens == 100
    # 40 in @ 1 $/Mtok + 60 out @ 2 $/Mtok = 160 µ$, plus the paid call's 1000 µ$.
    assert summary.cost_micros == 1160 and summary.cost_usd == "0.001160"
    started = [e for e in summary.entries if e.kind == "tool_started"]
    assert all(e.detail["external_key"].startswith("autobiz:") for e in started)
    rows = await TraceStore(database).load(tenant, handle.id)
    assert [r["seq"] for r in rows] == [e.seq for e in summary.entries]
    assert await TraceStore(database).run_cost_usd(tenant, handle.id) == Decimal("0.001160")


async def test_history_holds_no_secret_and_replays(kclient: Client, task_queue: str) -> None:
    tools = TestTools()
    secrets = list(SECRETS.values())
    calls = [
        Call(tool="test.read", input={"key": "k1", "note": " ".join(secrets[:12])}, step="a"),
        Call(tool="test.fail", input={"key": "k2", "note": " ".join(secrets[12:])}, step="b"),
        Call(tool="test.read", input={"key": "k3", "card": SECRETS["visa_plain"]}, step="c"),
        Call(tool="test.secret", input={"key": SECRETS["email"]}, step="d"),
    ]
    result, summary, handle = await run(
        kclient, task_queue, tools, GateTestInput(policy=policy(), calls=calls)
    )
    assert result.outcomes == ["ok", "ACTIVITY_FAILED", "SCHEMA_INVALID", "PERMISSION_DENIED"]
    history = await handle.fetch_history()
    raw = history.to_json()
    leaked = [name for name, secret in SECRETS.items() if secret in raw]
    assert leaked == []
    assert find_leaks(raw) == []
    assert "Encoded failure" in raw  # failure messages went into encrypted attributes
    assert "binary/encrypted" in raw or "YmluYXJ5L2VuY3J5cHRlZA" in raw
    # The trace the workflow keeps is redacted too (it reaches queries and the database).
    trace = summary.model_dump_json()
    assert [name for name, secret in SECRETS.items() if secret in trace] == []
    failed = next(e for e in summary.entries if e.kind == "tool_failed")
    assert "provider rejected" in failed.detail["message"]

    # Replay from the exported JSON, with the same converter (it must decrypt).
    replayer = Replayer(workflows=[GateTestWorkflow], data_converter=data_converter(SETTINGS))
    from temporalio.client import WorkflowHistory

    exported = WorkflowHistory.from_json(handle.id, json.loads(raw))
    await replayer.replay_workflow(exported)
