"""Guards that keep everything outside production away from the real world.

Outside production: no live credentials, no host that is not on
``settings.hygiene.allowed_hosts``, no email to a recipient that is not allowlisted.
Every client calls these in its constructor (credentials, base address) or before a send
(recipients), so a violation is refused before any byte leaves the process.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from pydantic import SecretStr

from autobiz.providers.errors import HygieneViolation
from autobiz.settings import Settings

# Prefixes of credentials that move real money or reach real customers.
LIVE_KEY_PREFIXES: tuple[str, ...] = (
    "sk_live_",  # Stripe secret key
    "rk_live_",  # Stripe restricted key
    "pk_live_",  # Stripe publishable key
    "whsec_live_",  # never issued by Stripe, but refuse the obvious mistake
)


def is_live_key(secret: str) -> bool:
    return secret.strip().startswith(LIVE_KEY_PREFIXES)


def ensure_test_credential(
    provider: str, name: str, secret: SecretStr | str, settings: Settings
) -> None:
    """Refuse a live credential unless the environment is production."""
    if settings.is_production:
        return
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if is_live_key(value):
        raise HygieneViolation(
            f"a live credential ({name}) is configured while AUTOBIZ_ENV={settings.env.value}; "
            "live keys are only accepted in production",
            provider=provider,
            provider_code="live_key_refused",
        )


def host_of(url: str) -> str:
    host = urlsplit(url).hostname
    if not host:
        raise HygieneViolation(f"not an absolute URL: {url!r}", provider="hygiene")
    return host.lower()


def ensure_host_allowed(provider: str, url: str, settings: Settings) -> None:
    """Outside production, only hosts on the allowlist may be contacted."""
    if settings.is_production:
        return
    host = host_of(url)
    allowed = {h.lower().strip("[]") for h in settings.hygiene.allowed_hosts}
    if host.strip("[]") not in allowed:
        raise HygieneViolation(
            f"host {host!r} is not on the allowlist (AUTOBIZ_HYGIENE__ALLOWED_HOSTS) "
            f"while AUTOBIZ_ENV={settings.env.value}",
            provider=provider,
            provider_code="host_not_allowed",
        )


def recipient_allowed(email: str, settings: Settings) -> bool:
    address = email.strip().lower()
    if address in {r.lower() for r in settings.hygiene.allowed_email_recipients}:
        return True
    _, _, domain = address.rpartition("@")
    return bool(domain) and domain in {d.lower() for d in settings.hygiene.allowed_email_domains}


def ensure_recipients_allowed(provider: str, emails: Iterable[str], settings: Settings) -> None:
    """Outside production, mail goes only to allowlisted domains or addresses."""
    if settings.is_production:
        return
    refused = sorted(e for e in emails if not recipient_allowed(e, settings))
    if refused:
        raise HygieneViolation(
            f"{len(refused)} recipient(s) not on the allowlist while "
            f"AUTOBIZ_ENV={settings.env.value}",
            provider=provider,
            provider_code="recipient_not_allowed",
        )


def ensure_settings_safe(settings: Settings) -> None:
    """Check every provider credential and base address at once (worker start-up, CLI)."""
    checks: list[tuple[str, str, SecretStr | None]] = [
        ("stripe", "stripe.api_key", settings.stripe.api_key),
        ("stripe", "stripe.webhook_secret", settings.stripe.webhook_secret),
        ("shopify", "shopify.access_token", settings.shopify.access_token),
        ("printful", "printful.api_token", settings.printful.api_token),
        ("sendgrid", "sendgrid.api_key", settings.sendgrid.api_key),
    ]
    for provider, name, secret in checks:
        if secret is not None:
            ensure_test_credential(provider, name, secret, settings)
    for provider, url in (
        ("stripe", settings.stripe.api_base),
        ("shopify", settings.shopify.api_base),
        ("printful", settings.printful.api_base),
        ("sendgrid", settings.sendgrid.api_base),
    ):
        ensure_host_allowed(provider, url, settings)
    if settings.llm.provider == "openai_compatible":  # the template model calls no host
        ensure_host_allowed("llm", settings.llm.base_url, settings)
