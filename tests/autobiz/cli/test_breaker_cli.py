"""`autobiz breaker status|reset` as an operator runs them (the real CLI in a
subprocess, real PostgreSQL as the application role): status shows a breaker a worker
opened, in every output format; reset closes it, is audited, and is refused without a
reason; an unknown provider and an unknown tenant exit 2 with their stable codes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from autobiz.breakers.machine import Outcome, Policy
from autobiz.breakers.store import BreakerStore
from autobiz.db.database import Database
from tests.autobiz.cli.test_incidents_cli import Cli
from tests.conftest import new_tenant
from tests.support.postgres import ProvisionedDatabase

pytestmark = pytest.mark.integration

# The default policy's threshold (settings.breaker): what a worker would use.
POLICY = Policy(open_for=timedelta(seconds=600))


async def _trip(db: Database, tenant: str, provider: str = "printful") -> None:
    store = BreakerStore(db, POLICY)
    for _ in range(POLICY.failure_threshold):
        await store.record(
            tenant,
            provider,
            Outcome.FAILURE,
            probe=False,
            failure="PROVIDER_UNAVAILABLE http 503",
            actor="workflow:order-1",
            detail={"tool": "printful.create_order@1"},
        )


async def test_status_shows_the_open_breaker_and_reset_closes_it_audited(
    database: Database, tenant: str, pg_database: ProvisionedDatabase
) -> None:
    await _trip(database, tenant)
    other = await new_tenant(database, "o")
    await _trip(database, other, "stripe")
    cli = Cli(pg_database, tenant)

    every = (await cli("breaker", "status", "--json")).json()
    assert [b["provider"] for b in every] == ["stripe", "shopify", "printful", "sendgrid", "llm"]
    states = {b["provider"]: b["state"] for b in every}
    # Only this tenant's printful breaker is open: the other tenant's stripe is not ours.
    assert states == {
        "stripe": "closed",
        "shopify": "closed",
        "printful": "open",
        "sendgrid": "closed",
        "llm": "closed",
    }
    (printful,) = (await cli("breaker", "status", "printful", "--json")).json()
    assert printful["failures"] == POLICY.failure_threshold
    assert 590 < printful["retry_in_seconds"] <= 600
    assert printful["last_failure"] == "PROVIDER_UNAVAILABLE http 503"

    plain = (await cli("breaker", "status", "--output", "plain")).stdout.splitlines()
    assert plain[0].split("\t") == [
        "provider",
        "state",
        "failures",
        "calls",
        "retry in",
        "last failure",
        "changed",
    ]
    row = next(line.split("\t") for line in plain if line.startswith("printful\t"))
    assert row[1:4] == ["open", "5", "5"]
    table = (await cli("breaker", "status", "printful", "--output", "table")).stdout
    assert "printful" in table and "open" in table and "PROVIDER_UNAVAILABLE" in table

    reset = await cli(
        "breaker",
        "reset",
        "printful",
        "--reason",
        "Printful status page: resolved",
        "--by",
        "ana",
        "--json",
    )
    done = reset.json()
    assert (done["state"], done["previous_state"], done["reset_by"]) == ("closed", "open", "ana")
    (after,) = (await cli("breaker", "status", "printful", "--json")).json()
    assert after["state"] == "closed" and after["failures"] == 0

    history = (await cli("breaker", "status", "printful", "--events", "--json")).json()
    assert [(e["from_state"], e["to_state"], e["actor"]) for e in history["events"]] == [
        ("open", "closed", "ana"),
        ("closed", "open", "workflow:order-1"),
    ]
    async with database.tenant(tenant) as s:
        audit = await s.fetch_all(
            "SELECT actor, action, outcome, detail FROM audit_log WHERE tenant_id = %s "
            "AND action = 'breaker.reset'",
            (tenant,),
        )
    assert audit == [
        {
            "actor": "ana",
            "action": "breaker.reset",
            "outcome": "done",
            "detail": {
                "provider": "printful",
                "reason": "Printful status page: resolved",
                "from_state": "open",
            },
        }
    ]
    # The other tenant's breaker was not touched.
    async with database.tenant(other) as s:
        state = await s.fetch_val(
            "SELECT state FROM circuit_breakers WHERE tenant_id = %s AND provider = 'stripe'",
            (other,),
        )
    assert state == "open"


async def test_refusals_have_stable_codes_and_change_nothing(
    database: Database, tenant: str, pg_database: ProvisionedDatabase
) -> None:
    await _trip(database, tenant)
    cli = Cli(pg_database, tenant)

    no_reason = await cli("breaker", "reset", "printful", check=False)
    assert no_reason.refused("ADMIN_REASON_REQUIRED") and no_reason.code == 2
    blank = await cli("breaker", "reset", "printful", "--reason", "  ", check=False)
    assert blank.refused("ADMIN_REASON_REQUIRED")
    unknown = await cli("breaker", "status", "paypal", check=False)
    assert unknown.refused("INPUT_INVALID") and unknown.code == 2
    assert "stripe" in unknown.stderr  # the hint names the providers that have one
    bad_reset = await cli("breaker", "reset", "paypal", "--reason", "x", "--json", check=False)
    assert bad_reset.code == 2 and json.loads(bad_reset.stdout)["error"]["code"] == "INPUT_INVALID"
    ghost = await cli(
        "breaker",
        "reset",
        "printful",
        "--tenant",
        "no-such-tenant",
        "--reason",
        "x",
        check=False,
    )
    assert ghost.refused("TENANT_UNKNOWN") and ghost.code == 2
    nobody = await cli("breaker", "status", "--tenant", "no-such-tenant", check=False)
    assert nobody.refused("TENANT_UNKNOWN") and nobody.code == 2
    missing = await cli("breaker", "reset", check=False)
    assert missing.code == 2 and "Traceback" not in missing.stderr

    (still,) = (await cli("breaker", "status", "printful", "--json")).json()
    assert still["state"] == "open"
    async with database.tenant(tenant) as s:
        audited = await s.fetch_val(
            "SELECT count(*) FROM audit_log WHERE tenant_id = %s AND action = 'breaker.reset'",
            (tenant,),
        )
    assert audited == 0
