"""SendGridMailer against the sandbox over real HTTP."""

from __future__ import annotations

import pytest

from autobiz.providers.errors import InvalidRequest, ProviderUnavailable, RateLimited
from autobiz.providers.sendgrid_client import Email, SendGridMailer
from tests.support.sandbox import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture
async def mailer(sandbox: Sandbox):
    client = SendGridMailer(sandbox.settings)
    yield client
    await client.aclose()


async def test_send_uses_the_kind_template_and_sandbox_mode(
    sandbox: Sandbox, mailer: SendGridMailer
) -> None:
    sent = await mailer.send(
        Email(
            kind="shipping_confirmation",
            to=["ada@example.com"],
            data={"tracking": "T1"},
            reference="order:t1:42",
        )
    )
    assert sent.sandbox_mode and sent.message_id
    [message] = await sandbox.control.outbox()
    request = message["request"]
    assert message["recipients"] == ["ada@example.com"]
    assert message["sandbox_mode"] is True
    assert request["template_id"] == sandbox.settings.sendgrid.templates["shipping_confirmation"]
    assert request["personalizations"][0]["dynamic_template_data"] == {"tracking": "T1"}
    assert request["custom_args"] == {"autobiz_ref": "order:t1:42"}


async def test_unknown_kind_is_refused_before_sending(
    sandbox: Sandbox, mailer: SendGridMailer
) -> None:
    with pytest.raises(InvalidRequest):
        await mailer.send(Email(kind="newsletter", to=["ada@example.com"]))
    assert await sandbox.control.outbox() == []


async def test_failure_mapping(sandbox: Sandbox, mailer: SendGridMailer) -> None:
    email = Email(kind="order_confirmation", to=["ada@example.com"])
    await sandbox.control.fault("error", "/sendgrid/*", status=503)
    with pytest.raises(ProviderUnavailable):
        await mailer.send(email)
    await sandbox.control.fault("rate_limit", "/sendgrid/*", retry_after=3)
    with pytest.raises(RateLimited):
        await mailer.send(email)
    assert await sandbox.control.outbox() == []
