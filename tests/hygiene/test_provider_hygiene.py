"""Hygiene of the provider layer: outside production no live credential is accepted, no
host off the allowlist is contacted, and no email goes to a recipient off the allowlist."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from autobiz.providers.errors import HygieneViolation
from autobiz.providers.hygiene import ensure_settings_safe, is_live_key
from autobiz.providers.printful_client import PrintfulOrders
from autobiz.providers.sendgrid_client import Email, SendGridMailer
from autobiz.providers.shopify_client import ShopifyAdmin
from autobiz.providers.stripe_client import StripePayments
from autobiz.settings import Environment, HygieneSettings, Settings
from tests.support.sandbox import Sandbox, sandbox_settings

pytestmark = pytest.mark.hygiene

CLIENTS: dict[str, Callable[[Settings], Any]] = {
    "stripe": StripePayments,
    "shopify": ShopifyAdmin,
    "printful": PrintfulOrders,
    "sendgrid": SendGridMailer,
}


def _with(settings: Settings, section: str, **changes: Any) -> Settings:
    return settings.model_copy(
        update={section: getattr(settings, section).model_copy(update=changes)}
    )


@pytest.mark.parametrize(
    "key", ["sk_live_51Habc", "rk_live_51Habc", "pk_live_51Habc", " sk_live_x"]
)
@pytest.mark.parametrize("env", [Environment.DEVELOPMENT, Environment.TEST])
def test_live_stripe_keys_are_refused_outside_production(key: str, env: Environment) -> None:
    settings = _with(
        sandbox_settings().model_copy(update={"env": env}), "stripe", api_key=SecretStr(key)
    )
    with pytest.raises(HygieneViolation) as exc:
        StripePayments(settings)
    assert exc.value.provider_code == "live_key_refused"
    assert key.strip() not in str(exc.value)  # the secret never appears in the error
    with pytest.raises(HygieneViolation):
        ensure_settings_safe(settings)


def test_test_keys_pass_and_live_keys_are_accepted_in_production() -> None:
    assert not is_live_key("sk_test_abc") and is_live_key("rk_live_abc")
    production = _with(
        sandbox_settings().model_copy(update={"env": Environment.PRODUCTION}),
        "stripe",
        api_key=SecretStr("sk_live_51Habc"),
        api_base="https://api.stripe.com",
    )
    StripePayments(production)  # constructing opens no connection


@pytest.mark.parametrize("provider", sorted(CLIENTS))
@pytest.mark.parametrize(
    "api_base",
    [
        "https://api.stripe.com",
        "https://autobiz-demo.myshopify.com",
        "http://10.0.0.5:8766/x",
        "https://api.printful.com",
        "https://api.sendgrid.com",
    ],
)
def test_clients_refuse_hosts_off_the_allowlist(provider: str, api_base: str) -> None:
    settings = _with(sandbox_settings(), provider, api_base=api_base)
    with pytest.raises(HygieneViolation) as exc:
        CLIENTS[provider](settings)
    assert exc.value.provider_code == "host_not_allowed"


def test_the_allowlist_is_a_setting() -> None:
    settings = _with(sandbox_settings(), "printful", api_base="http://printful.internal.test")
    settings = settings.model_copy(
        update={"hygiene": HygieneSettings(allowed_hosts=["printful.internal.test"])}
    )
    PrintfulOrders(settings)


async def test_email_to_recipients_off_the_allowlist_is_refused_before_sending(
    sandbox: Sandbox,
) -> None:
    mailer = SendGridMailer(sandbox.settings)
    try:
        with pytest.raises(HygieneViolation) as exc:
            await mailer.send(
                Email(kind="order_confirmation", to=["ada@example.com", "bob@gmail.com"])
            )
        assert exc.value.provider_code == "recipient_not_allowed"
        assert "gmail" not in str(exc.value)  # no PII in the error
        assert await sandbox.control.outbox() == []
    finally:
        await mailer.aclose()


async def test_allowlisted_single_recipients_and_sandbox_mode(sandbox: Sandbox) -> None:
    settings = sandbox.settings.model_copy(
        update={"hygiene": HygieneSettings(allowed_email_recipients=["ops@merchant.test"])}
    )
    settings = _with(settings, "sendgrid", sandbox_mode=False)  # ignored outside production
    mailer = SendGridMailer(settings)
    try:
        sent = await mailer.send(Email(kind="daily_report", to=["ops@merchant.test"]))
    finally:
        await mailer.aclose()
    assert sent.sandbox_mode is True
    [message] = await sandbox.control.outbox()
    assert message["request"]["mail_settings"] == {"sandbox_mode": {"enable": True}}


def test_default_settings_are_safe() -> None:
    ensure_settings_safe(Settings())


def test_secrets_do_not_leak_through_repr() -> None:
    settings = _with(sandbox_settings(), "stripe", api_key=SecretStr("sk_test_supersecret"))
    assert "supersecret" not in repr(settings)
    assert "supersecret" not in repr(StripePayments(settings).__dict__.get("_http"))
