"""Secrets and PII the redaction scanner must catch, and look-alikes it must leave alone.

Built from parts at import time so no real-looking key sits whole in the source.
"""

from __future__ import annotations

_ALNUM = "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY"


def _key(prefix: str, length: int) -> str:
    body = (_ALNUM * (length // len(_ALNUM) + 1))[:length]
    return prefix + body


SECRETS: dict[str, str] = {
    "stripe_secret_live_long": _key("sk_" + "live_", 107),
    "stripe_secret_test": _key("sk_" + "test_", 24),
    "stripe_restricted_live_long": _key("rk_" + "live_", 99),
    "stripe_restricted_test": _key("rk_" + "test_", 40),
    "stripe_publishable_live": _key("pk_" + "live_", 99),
    "stripe_publishable_test": _key("pk_" + "test_", 30),
    "stripe_webhook_secret": _key("whsec_", 32),
    "shopify_access_token": "shpat_" + "0123456789abcdef" * 2,
    "shopify_shared_secret": "shpss_" + "fedcba9876543210" * 2,
    "shopify_custom_app": "shpca_" + "00ff00ff00ff00ff" * 2,
    "shopify_private_app": "shppa_" + "abcdefabcdefabcd" * 2,
    "llm_api_key": _key("sk-", 48),
    "llm_project_key": _key("sk-" + "proj-", 64),
    "sendgrid_key": "SG." + _key("", 22) + "." + _key("", 43),
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    + "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUifQ."
    + "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "visa_plain": "4242424242424242",
    "visa_spaced": "4242 4242 4242 4242",
    "mastercard_dashed": "5555-5555-5555-4444",
    "amex": "378282246310005",
    "email": "jane.doe+orders@example.com",
    "email_upper": "J.Smith@Mail.Example.CO.UK",
    "phone_e164": "+14155552671",
    "phone_us": "(415) 555-2671",
    "phone_dashed": "415-555-2671",
    "phone_uk": "+44 20 7946 0958",
}

# Must come out untouched.
NOT_SECRETS: list[str] = [
    "order 1234567812345678",  # 16 digits, Luhn-invalid: an order number
    "#1001",
    "gid://shopify/Order/5551234567",
    "amount_minor=5000 currency=USD",
    "2025-01-15T10:30:00+00:00",
    "pi_3MtwBwLkdIwHu7ix28a3tqPa",
    "printful order 98765432",
    "SKU-TSHIRT-BLK-XL",
    "sk_ is a prefix, not a key",
    "task-list-of-the-day",  # a word with dashes, not an sk- key
]

assert not __import__("kernel.redaction", fromlist=["luhn_valid"]).luhn_valid("1234567812345678")
