"""The faults armed in the sandbox at the start of every golden round.

Each is a transient fault a real provider shows (a 5xx, a 429 with ``Retry-After``, an
answer that never comes, a commit whose response is lost), aimed at a call one of the
workflows makes (never at the scenario drivers' own calls), for one matching call. The
flows must absorb them: retries, idempotency keys, the breaker staying closed.
"""

from __future__ import annotations

from typing import Any

# kind, path glob, and the rule's other fields (sandbox.faults.FaultRule).
ROUND_FAULTS: tuple[dict[str, Any], ...] = (
    # Stripe answers the capture with a 503 once.
    {
        "kind": "error",
        "method": "POST",
        "path": "/stripe/v1/payment_intents/*/capture",
        "status": 503,
    },
    # Stripe commits a refund, then the answer is lost: the retry must not refund twice.
    {
        "kind": "commit_then_drop",
        "method": "POST",
        "path": "/stripe/v1/refunds",
        "hang_seconds": 2.0,
    },
    # Printful rate-limits an order create (429, Retry-After: 1).
    {"kind": "rate_limit", "method": "POST", "path": "/printful/v2/orders", "retry_after": 1.0},
    # Printful never answers an order confirmation (the client gives up).
    {
        "kind": "timeout",
        "method": "POST",
        "path": "/printful/v2/orders/*/confirmation",
        "hang_seconds": 2.0,
    },
    # Shopify's GraphQL endpoint answers a fulfilment with a 502.
    {
        "kind": "error",
        "method": "POST",
        "path": "/shopify/*",
        "status": 502,
        "operation": "FulfillmentCreate",
    },
    # SendGrid answers a reply with a 500.
    {"kind": "error", "method": "POST", "path": "/sendgrid/v3/mail/send", "status": 500},
)


def describe(rule: dict[str, Any]) -> str:
    """``error 503 POST /stripe/v1/...`` — how a fault is named in the evidence."""
    extra = rule.get("status") or rule.get("operation") or ""
    return " ".join(
        str(p) for p in (rule["kind"], extra, rule.get("method", "*"), rule["path"]) if p
    )
