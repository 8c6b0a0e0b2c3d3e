"""WF06's triage (pure): which Printful holds and failures are fixed without a person,
and what the diagnosis says (cause, evidence, alternatives with why rejected, action)."""

from __future__ import annotations

import pytest

from kernel.tools.printful import PrintfulRecipient
from workflows.orders.exception_triage import classify, differing_fields, triage
from workflows.orders.models import Diagnosis, ExceptionTopic

pytestmark = pytest.mark.unit

AT_PRINTFUL = PrintfulRecipient(
    name="Ada Lovelace", address1="1 Analytical Way", city="London", zip="N1 9GU", country_code="GB"
)
CORRECTED = AT_PRINTFUL.model_copy(update={"address1": "12 Analytical Way", "zip": "N1 9GX"})


def _triage(
    topic: ExceptionTopic,
    reason: str,
    printful_status: str,
    *,
    shopify_address: PrintfulRecipient | None = AT_PRINTFUL,
    printful_address: PrintfulRecipient | None = AT_PRINTFUL,
    retries_done: int = 0,
    max_retries: int = 2,
) -> Diagnosis:
    """:func:`triage` of one event; both addresses Printful's, no retry spent of two
    unless given."""
    return triage(
        topic=topic,
        reason=reason,
        printful_status=printful_status,
        shopify_address=shopify_address,
        printful_address=printful_address,
        retries_done=retries_done,
        max_retries=max_retries,
    )


@pytest.mark.parametrize(
    ("reason", "cause"),
    [
        ("Address verification failed: street not found", "address"),
        ("Invalid ZIP code", "address"),
        ("Failed to charge the wallet", "billing"),
        ("Print file is too small (low DPI)", "printfile"),
        ("Temporary processing error, try again", "transient"),
        ("Something odd", "unknown"),
    ],
)
def test_the_reason_names_the_cause(reason: str, cause: str) -> None:
    assert classify(reason) == cause


def test_fields_compared_by_name_only_and_normalised() -> None:
    assert differing_fields(CORRECTED, AT_PRINTFUL) == ("address1", "zip")
    spaced = AT_PRINTFUL.model_copy(update={"city": "  london "})
    assert differing_fields(spaced, AT_PRINTFUL) == ()
    assert differing_fields(None, AT_PRINTFUL) == ()


def test_an_address_hold_with_a_corrected_shopify_address_is_fixed_automatically() -> None:
    d = _triage(
        "order_put_hold", "Address verification failed", "onhold", shopify_address=CORRECTED
    )
    assert (d.cause, d.recommended, d.automatic) == ("address", "correct_address", True)
    assert any("differs in: address1, zip" in e for e in d.evidence)
    # No customer data in the diagnosis: field names only, never the address itself.
    assert "12 Analytical Way" not in d.model_dump_json()
    rejected = {a.action: a.rejected_because for a in d.alternatives}
    assert set(rejected) == {"retry", "escalate", "cancel_and_refund"}
    assert all(rejected.values())


def test_an_address_hold_without_a_better_address_asks_to_contact_the_customer() -> None:
    d = _triage("order_put_hold", "Undeliverable address", "onhold")
    assert (d.recommended, d.automatic) == ("contact_customer", False)
    assert "correct_address" in {a.action for a in d.alternatives}


def test_a_transient_failure_is_retried_up_to_the_bound() -> None:
    reason = "Temporary processing error"
    first = _triage("order_failed", reason, "failed")
    assert (first.cause, first.recommended, first.automatic) == ("transient", "retry", True)
    spent = _triage("order_failed", reason, "failed", retries_done=2)
    assert (spent.recommended, spent.automatic) == ("fix", False)
    assert any("2 of 2" in e for e in spent.evidence)


@pytest.mark.parametrize("reason", ["Print file is too small", "Failed to charge", "Weird"])
def test_anything_else_goes_to_a_person(reason: str) -> None:
    d = _triage("order_failed", reason, "failed")
    assert (d.recommended, d.automatic) == ("fix", False)
    assert "cancel_and_refund" in {a.action for a in d.alternatives}


def test_a_cancellation_of_an_order_in_production_is_never_automatic() -> None:
    d = _triage(
        "cancel_requested",
        "Printful order 7 is inprocess: an order in production cannot be cancelled",
        "inprocess",
        shopify_address=None,
        printful_address=None,
    )
    assert (d.cause, d.recommended, d.automatic) == (
        "cancel_in_production",
        "contact_customer",
        False,
    )
    assert "Printful order status now: inprocess" in d.evidence
    rejected = {a.action: a.rejected_because for a in d.alternatives}
    assert set(rejected) == {"cancel_at_printful", "fix", "cancel_and_refund"}
    assert "person" in rejected["cancel_and_refund"]
