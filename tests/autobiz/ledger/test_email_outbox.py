"""The email outbox (0006): a claim before SendGrid is called; a claim found without an
answer is never sent again (``unknown``, an ops note); the database refuses to undo a
``sent`` or ``unknown`` row. And the send_email activity on the real sandbox: an answer
lost after SendGrid accepted the message sends it once, however often it is retried."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from temporalio.testing import ActivityEnvironment

from activities.sendgrid_activities import SendGridActivities
from autobiz.db.database import Database
from autobiz.ledger.email_outbox import Claim, EmailOutbox
from autobiz.providers.tenant_clients import TenantClients
from autobiz.secrets import CredentialStore, MappingSecretsBackend
from kernel import tools
from kernel.contracts import CallContext
from kernel.tools.sendgrid import SendEmailInput
from sandbox.accounts import credentials_of
from tests.support.calls import call_context
from tests.support.sandbox import Sandbox, sandbox, sandbox_server, with_timeout  # noqa: F401

pytestmark = pytest.mark.integration


async def _claimed(outbox: EmailOutbox, tenant: str, key: str) -> Claim:
    return await outbox.claim(
        tenant,
        internal_key=key,
        external_key=f"ext-{key}",
        workflow_id="wf-1",
        template="shipping_confirmation",
    )


async def _claim(outbox: EmailOutbox, tenant: str, key: str) -> str:
    """The status of the claim an attempt takes."""
    return (await _claimed(outbox, tenant, key)).status


async def _audit(db: Database, tenant: str) -> list[dict[str, object]]:
    async with db.tenant(tenant) as s:
        return await s.fetch_all(
            "SELECT action, outcome, detail FROM audit_log WHERE tenant_id = %s", (tenant,)
        )


async def test_a_claim_without_an_answer_is_never_sent_again(
    database: Database, tenant: str
) -> None:
    outbox = EmailOutbox(database)
    key = uuid.uuid4().hex
    assert await _claim(outbox, tenant, key) == "sending"  # this attempt may send
    # The attempt died before recording SendGrid's answer: the next one must not send.
    assert await _claim(outbox, tenant, key) == "unknown"
    assert await _claim(outbox, tenant, key) == "unknown"
    [note] = await _audit(database, tenant)
    assert (note["action"], note["outcome"]) == ("email.outcome_unknown", "not_resent")
    assert f"ext-{key}" in str(note["detail"])
    # A late answer is news: unknown -> sent; then every attempt replays it.
    await outbox.settle(tenant, key, "sent", message_id="msg-1")
    claim = await outbox.get(tenant, key)
    assert claim is not None and (claim.status, claim.message_id) == ("sent", "msg-1")
    assert await _claim(outbox, tenant, key) == "sent"


async def test_a_refused_send_may_be_claimed_again(database: Database, tenant: str) -> None:
    outbox = EmailOutbox(database)
    key = uuid.uuid4().hex
    assert await _claim(outbox, tenant, key) == "sending"
    await outbox.settle(tenant, key, "not_sent")  # SendGrid answered 5xx/429/4xx
    again = await _claimed(outbox, tenant, key)
    assert (again.status, again.attempts, again.may_send) == ("sending", 2, True)


async def test_the_database_refuses_to_reopen_a_sent_or_unknown_message(
    database: Database, tenant: str
) -> None:
    outbox = EmailOutbox(database)
    sent, unknown = uuid.uuid4().hex, uuid.uuid4().hex
    await _claim(outbox, tenant, sent)
    await outbox.settle(tenant, sent, "sent", message_id="m")
    await _claim(outbox, tenant, unknown)
    await _claim(outbox, tenant, unknown)
    for key in (sent, unknown):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            async with database.tenant(tenant) as s:
                await s.execute(
                    "UPDATE email_outbox SET status = 'sending' WHERE tenant_id = %s "
                    "AND internal_key = %s",
                    (tenant, key),
                )
    with pytest.raises(psycopg.Error):
        async with database.tenant(tenant) as s:
            await s.execute("DELETE FROM email_outbox WHERE tenant_id = %s", (tenant,))


def _context(tenant: str, input: SendEmailInput) -> CallContext:
    return call_context(
        tenant,
        tools.sendgrid.SEND_EMAIL,
        input,
        workflow_id=f"order:{tenant}:{uuid.uuid4().hex[:8]}",
        step="email_shipped",
        principal="system:test",
    )


async def test_an_answer_lost_after_sendgrid_accepted_sends_once(
    sandbox: Sandbox,  # noqa: F811
    database: Database,
    tenant: str,
) -> None:
    """SendGrid commits the message and the answer never arrives (the client gives up):
    the attempt records ``unknown``; a retry (a new attempt, same call) sends nothing."""
    account = await sandbox.host(tenant)
    clients = TenantClients(  # clients that give up on an unanswered call after 1 s
        with_timeout(sandbox.settings, 1.0),
        CredentialStore(MappingSecretsBackend({tenant: credentials_of(account)})),
    )
    email = SendEmailInput(
        to="customer@example.com", template="shipping_confirmation", subject="Hi"
    )
    ctx = _context(tenant, email)
    await sandbox.control.fault("commit_then_drop", "/sendgrid/v3/mail/send", hang_seconds=5)
    activities = SendGridActivities(clients, database)
    try:
        first = await ActivityEnvironment().run(activities.send_email, ctx, email)
        assert first.status == "unknown"
        # The idempotency store kept the first outcome; expire it as a lost lease would.
        async with database.tenant(tenant) as s:
            await s.execute(
                "UPDATE idempotency_keys SET status = 'failed' WHERE tenant_id = %s "
                "AND internal_key = %s",
                (tenant, ctx.internal_key),
            )
        again = await ActivityEnvironment().run(activities.send_email, ctx, email)
        assert again.status == "unknown"
    finally:
        await clients.aclose()
    mine = [m for m in await sandbox.control.outbox() if m["account"] == account.tenant]
    assert len(mine) == 1
    assert mine[0]["request"]["custom_args"] == {"autobiz_ref": ctx.external_key}
    claim = await EmailOutbox(database).get(tenant, ctx.internal_key)
    assert claim is not None and claim.status == "unknown"
