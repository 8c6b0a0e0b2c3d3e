"""The order_state row that rides with a tool call: written before the tool, merged over
what the row holds, a retried write recognised; a worker without the interceptor refuses
the call, and a database that is down does not fail the tool. A row ``with_result`` is
written only once the call succeeded: in a side effect's finish transaction, with its
receipt."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput

from activities.kernel_activities import KernelActivities
from activities.risk_activities import RiskActivities
from autobiz.db.database import Database
from autobiz.ledger.executor import ProviderResult, SideEffectRunner
from autobiz.ledger.idempotency_store import IdempotencyInProgressError
from autobiz.ledger.order_state import OrderStateRows, state_hash
from autobiz.ledger.riding_projection import RidingProjection, projection_taken
from kernel import tools
from kernel.call import TraceBatch
from kernel.contracts import CallContext, ProjectionWrite
from kernel.tools.printful import PrintfulOrderOutput, PrintfulOrderRef
from kernel.tools.risk import RiskInput
from tests.conftest import new_tenant
from tests.support.calls import call_context

pytestmark = pytest.mark.integration


def _ride(tenant: str, state: str, expected: int, **data: Any) -> ProjectionWrite:
    return ProjectionWrite(
        tenant_id=tenant, order_id="o1", state=state, expected_version=expected, data=data
    )


async def _row(db: Database, tenant: str) -> dict[str, Any]:
    async with db.tenant(tenant) as s:
        row = await s.fetch_one(
            "SELECT version, state, state_hash, data FROM order_state "
            "WHERE tenant_id = %s AND order_id = 'o1'",
            (tenant,),
        )
    assert row is not None
    return dict(row)


async def test_a_ride_moves_the_row_and_a_retry_is_recognised(
    database: Database, tenant: str
) -> None:
    rows = OrderStateRows(database)
    first = await rows.ride(_ride(tenant, "assessing", 0, workflow_id="wf", risk=None))
    assert (first.version, first.applied) == (1, True)
    again = await rows.ride(_ride(tenant, "assessing", 0, workflow_id="wf", risk=None))
    assert (again.version, again.applied) == (1, False)  # an activity retry: nothing new
    paid = await rows.ride(_ride(tenant, "paid", 1, workflow_id="wf", captured_minor=2500))
    assert (paid.version, paid.applied) == (2, True)
    row = await _row(database, tenant)
    assert row["state"] == "paid" and row["version"] == 2
    # The fields of the earlier write stay; the hash is of what the row now holds.
    assert row["data"] == {"workflow_id": "wf", "risk": None, "captured_minor": 2500}
    assert row["state_hash"] == state_hash("paid", row["data"])


async def test_a_ride_merges_over_a_row_another_flow_moved(database: Database, tenant: str) -> None:
    """What the standalone write does after its conflict (read, merge, write), in one
    transaction: the other flow's fields are kept, the version moves past its."""
    async with database.tenant(tenant) as s:
        await s.execute(
            "INSERT INTO order_state (tenant_id, order_id, version, state, state_hash, data)"
            " VALUES (%s, 'o1', 3, 'recovered', 'x', '{\"decline_class\": \"soft\"}')",
            (tenant,),
        )
    written = await OrderStateRows(database).ride(_ride(tenant, "assessing", 0, workflow_id="wf"))
    assert (written.version, written.applied) == (4, True)
    row = await _row(database, tenant)
    assert row["state"] == "assessing"
    assert row["data"] == {"decline_class": "soft", "workflow_id": "wf"}


async def test_the_last_row_rides_with_the_trace_in_one_transaction(
    database: Database, tenant: str
) -> None:
    batch = TraceBatch(
        tenant_id=tenant,
        workflow_id="wf",
        run_id="run-1",
        cost_micros=0,
        entries=[],
        projection=_ride(tenant, "completed", 0, workflow_id="wf"),
    )
    persist = KernelActivities(database).persist_trace_with_row
    assert await ActivityEnvironment().run(persist, batch) == 0
    assert await ActivityEnvironment().run(persist, batch) == 0  # retried: no second move
    row = await _row(database, tenant)
    assert (row["state"], row["version"]) == ("completed", 1)


def _risk_call(tenant: str, projection: ProjectionWrite | None) -> tuple[CallContext, RiskInput]:
    input = RiskInput(order_id="o1", amount_minor=2500, currency="USD", country_code="GB")
    ctx = call_context(tenant, tools.risk.ASSESS, input)
    return ctx.model_copy(update={"projection": projection}), input


async def test_a_worker_without_the_interceptor_refuses_the_call(tenant: str) -> None:
    """The row would be lost without a word: the call fails (retryable) instead."""
    ctx, input = _risk_call(tenant, _ride(tenant, "assessing", 0))
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(RiskActivities().assess, ctx, input)
    assert refused.value.type == "PROJECTION_NOT_WRITTEN" and not refused.value.non_retryable
    plain, _ = _risk_call(tenant, None)
    assert (await ActivityEnvironment().run(RiskActivities().assess, plain, input)).level == "low"


class _Tool(ActivityInboundInterceptor):
    """The end of the chain: what the tool activity sees when it runs."""

    def __init__(self, db: Database | None = None) -> None:
        self.db = db
        self.seen: list[tuple[bool, dict[str, Any] | None]] = []

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        row = None
        if self.db is not None:
            ctx = input.args[0]
            async with self.db.tenant(ctx.tenant_id) as s:
                found = await s.fetch_one(
                    "SELECT state, version FROM order_state WHERE tenant_id = %s",
                    (ctx.tenant_id,),
                )
            row = None if found is None else dict(found)
        self.seen.append((projection_taken(), row))
        return "done"


def _input(ctx: CallContext, input: RiskInput) -> ExecuteActivityInput:
    return ExecuteActivityInput(fn=lambda *a: None, args=[ctx, input], executor=None, headers={})


async def test_the_interceptor_writes_the_row_before_the_tool_runs(
    database: Database, tenant: str
) -> None:
    tool = _Tool(database)
    chain = RidingProjection(database).intercept_activity(tool)
    ctx, input = _risk_call(tenant, _ride(tenant, "assessing", 0, workflow_id="wf"))
    assert await chain.execute_activity(_input(ctx, input)) == "done"
    assert tool.seen == [(True, {"state": "assessing", "version": 1})]
    plain, _ = _risk_call(tenant, None)
    await chain.execute_activity(_input(plain, input))
    assert tool.seen[-1] == (False, {"state": "assessing", "version": 1})
    assert not projection_taken()  # reset once the activity is done


async def test_a_database_that_is_down_does_not_fail_the_tool(tenant: str) -> None:
    """The row lags one state (the run's next write merges over it); the order goes on."""
    dead = Database("postgresql://postgres@127.0.0.1:9/none", None, min_size=1, timeout=1.0)
    await dead._app_pool.open(wait=False)  # nothing listens on port 9: every checkout fails
    tool = _Tool()
    chain = RidingProjection(dead).intercept_activity(tool)
    ctx, input = _risk_call(tenant, _ride(tenant, "assessing", 0))
    try:
        assert await chain.execute_activity(_input(ctx, input)) == "done"
    finally:
        await dead._app_pool.close()
    assert tool.seen == [(True, None)]


async def test_a_row_for_another_tenant_is_never_written_and_the_call_refused(
    database: Database, tenant: str
) -> None:
    """The row is not covered by the call's keys: it is bound to the call's tenant
    instead, so a forged context cannot move another merchant's order."""
    other = await new_tenant(database, "other")
    ctx, input = _risk_call(tenant, _ride(other, "assessing", 0))
    tool = _Tool()
    chain = RidingProjection(database).intercept_activity(tool)
    assert await chain.execute_activity(_input(ctx, input)) == "done"
    assert tool.seen == [(False, None)]  # not taken: the tool's verify_call refuses it
    async with database.tenant(other) as s:
        assert await s.fetch_val("SELECT count(*) FROM order_state") == 0
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(RiskActivities().assess, ctx, input)
    assert refused.value.type == "GATE_BYPASSED" and refused.value.non_retryable


def _with_result(tenant: str, state: str, expected: int, **data: Any) -> ProjectionWrite:
    return _ride(tenant, state, expected, **data).model_copy(update={"with_result": True})


class _Failing(_Tool):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        await super().execute_activity(input)
        raise ApplicationError("provider down", type="PROVIDER_UNAVAILABLE")


async def test_a_row_with_the_result_is_written_once_the_call_succeeded_never_before(
    database: Database, tenant: str
) -> None:
    """A call without a finish transaction of its own (a read) writes it after; a call
    that fails never does, so the row never says what did not happen."""
    failing = _Failing(database)
    chain = RidingProjection(database).intercept_activity(failing)
    ctx, input = _risk_call(tenant, _with_result(tenant, "in_production", 0, workflow_id="wf"))
    with pytest.raises(ApplicationError):
        await chain.execute_activity(_input(ctx, input))
    assert failing.seen == [(True, None)]  # taken, and not written before the tool
    async with database.tenant(tenant) as s:
        assert await s.fetch_val("SELECT count(*) FROM order_state") == 0

    tool = _Tool(database)
    chain = RidingProjection(database).intercept_activity(tool)
    assert await chain.execute_activity(_input(ctx, input)) == "done"
    assert tool.seen == [(True, None)]
    row = await _row(database, tenant)
    assert (row["state"], row["version"]) == ("in_production", 1)


class _Confirm(ActivityInboundInterceptor):
    """The Printful confirm as its activity runs it: through the side-effect runner."""

    def __init__(self, db: Database) -> None:
        self.runner = SideEffectRunner(db)
        self.executed = 0

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        ctx, ref = input.args

        async def confirm() -> ProviderResult[PrintfulOrderOutput]:
            self.executed += 1
            out = PrintfulOrderOutput(printful_order_id=7, status="pending")
            return ProviderResult(output=out, provider_object_id="7", status="pending")

        return await self.runner.run(ctx, ref, PrintfulOrderOutput, "act-1", confirm)


async def test_a_row_with_the_result_is_stored_with_the_side_effects_receipt(
    database: Database, tenant: str
) -> None:
    """Stored in the finish's transaction (the receipt's created_at and the row's
    updated_at are that transaction's now()); a repeat answered from the idempotency
    store finds it there and moves nothing."""
    ref = PrintfulOrderRef(printful_order_id=7)
    ctx = call_context(tenant, tools.printful.CONFIRM_ORDER, ref).model_copy(
        update={"projection": _with_result(tenant, "in_production", 0, workflow_id="wf")}
    )
    confirm = _Confirm(database)
    chain = RidingProjection(database).intercept_activity(confirm)
    out = await chain.execute_activity(_input(ctx, ref))  # type: ignore[arg-type]
    assert out.printful_order_id == 7
    again = await chain.execute_activity(_input(ctx, ref))  # type: ignore[arg-type]
    assert again == out and confirm.executed == 1
    async with database.tenant(tenant) as s:
        stored = await s.fetch_one(
            "SELECT o.version, o.state, o.updated_at = r.created_at AS together "
            "FROM order_state o JOIN receipts r ON r.tenant_id = o.tenant_id "
            "WHERE o.order_id = 'o1' AND r.tool = 'printful.confirm_order'"
        )
    assert stored == {"version": 1, "state": "in_production", "together": True}


class _Create(ActivityInboundInterceptor):
    """A Printful order create as its activity runs it (through the side-effect runner);
    the provider call looks at what is stored when it is made."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.runner = SideEffectRunner(db)
        self.seen: list[dict[str, Any] | None] = []

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        ctx, ref = input.args

        async def create() -> ProviderResult[PrintfulOrderOutput]:
            async with self.db.tenant(ctx.tenant_id) as s:
                found = await s.fetch_one(
                    "SELECT o.state, k.status FROM order_state o JOIN idempotency_keys k "
                    "ON k.tenant_id = o.tenant_id WHERE o.order_id = 'o1' "
                    "AND k.internal_key = %s",
                    (ctx.internal_key,),
                )
            self.seen.append(None if found is None else dict(found))
            out = PrintfulOrderOutput(printful_order_id=7, status="draft")
            return ProviderResult(output=out, provider_object_id="7", status="draft")

        return await self.runner.run(ctx, ref, PrintfulOrderOutput, "act-1", create)


def _create_call(tenant: str, row: ProjectionWrite) -> tuple[CallContext, PrintfulOrderRef]:
    ref = PrintfulOrderRef(printful_order_id=7)
    ctx = call_context(tenant, tools.printful.CONFIRM_ORDER, ref)
    return ctx.model_copy(update={"projection": row}), ref


async def test_a_row_before_a_side_effect_is_stored_in_its_claims_transaction(
    database: Database, tenant: str
) -> None:
    """One transaction fewer: the row is in before the provider is called, written by
    the transaction that claimed the key (the interceptor's own write never runs); a
    repeat answered from the store moves nothing."""
    create = _Create(database)
    riding = RidingProjection(database)
    own: list[ProjectionWrite] = []
    write_alone = riding.rows.ride

    async def spy(write: ProjectionWrite) -> Any:
        own.append(write)
        return await write_alone(write)

    riding.rows.ride = spy  # type: ignore[method-assign]
    chain = riding.intercept_activity(create)
    ctx, ref = _create_call(tenant, _ride(tenant, "paid", 0, workflow_id="wf"))
    out = await chain.execute_activity(_input(ctx, ref))  # type: ignore[arg-type]
    assert out.printful_order_id == 7
    assert create.seen == [{"state": "paid", "status": "in_progress"}] and own == []
    again = await chain.execute_activity(_input(ctx, ref))  # type: ignore[arg-type]
    assert again == out and len(create.seen) == 1 and own == []
    row = await _row(database, tenant)
    assert (row["state"], row["version"]) == ("paid", 1)


async def test_a_claim_that_does_not_commit_leaves_the_row_to_the_interceptor(
    database: Database, tenant: str
) -> None:
    """The same call running elsewhere: the claim raises and rolls back, the call fails
    (retryable), and the row is still written, after, as a ride always was."""
    ctx, ref = _create_call(tenant, _ride(tenant, "paid", 0, workflow_id="wf"))
    async with database.tenant(tenant) as s:
        await s.execute(
            "INSERT INTO idempotency_keys (tenant_id, internal_key, external_key, tool, "
            "status, first_seen_at, last_seen_at, expires_at) "
            "VALUES (%s, %s, %s, %s, 'in_progress', now(), now(), now() + interval '1 day')",
            (tenant, ctx.internal_key, ctx.external_key, ctx.ref),
        )
    create = _Create(database)
    chain = RidingProjection(database).intercept_activity(create)
    with pytest.raises(IdempotencyInProgressError):
        await chain.execute_activity(_input(ctx, ref))  # type: ignore[arg-type]
    assert create.seen == []  # the provider was not called
    row = await _row(database, tenant)
    assert (row["state"], row["version"]) == ("paid", 1)


async def test_a_row_the_claim_cannot_store_does_not_fail_the_side_effect(
    database: Database, tenant: str
) -> None:
    """A ride never fails its call: a row PostgreSQL refuses (a NUL in its jsonb) is
    rolled back to its savepoint, the claim commits, the provider is called once."""
    create = _Create(database)
    chain = RidingProjection(database).intercept_activity(create)
    ctx, ref = _create_call(tenant, _ride(tenant, "paid", 0, workflow_id="wf", note="\x00"))
    out = await chain.execute_activity(_input(ctx, ref))  # type: ignore[arg-type]
    assert out.printful_order_id == 7 and create.seen == [None]  # called, no row
    async with database.tenant(tenant) as s:
        assert await s.fetch_val("SELECT count(*) FROM order_state") == 0
        status = await s.fetch_val(
            "SELECT status FROM idempotency_keys WHERE internal_key = %s", (ctx.internal_key,)
        )
    assert status == "succeeded"
