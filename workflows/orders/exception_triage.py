"""WF06's triage: a Printful hold or failure read into a structured diagnosis.

Pure (no I/O, no Temporal): the FulfillmentException workflow feeds it what it read —
Printful's event and reason, the order's status at Printful, the address Printful holds
and the one Shopify has now — and records the answer in the trace. What is safe to do
without a person: correct the address from the customer's own current Shopify address
(nothing moves but the label), and re-submit a transient failure a bounded number of
times. Everything else, and anything financial or final, goes to a person — always the
``cancel_requested`` case (a cancellation that came after Printful started making the
order: nothing to fix, and refunding goods already being made is a person's call).
"""

from __future__ import annotations

from kernel.tools.printful import PrintfulRecipient
from workflows.orders.models import (
    Alternative,
    Diagnosis,
    ExceptionCause,
    ExceptionTopic,
)

# Words in Printful's reason that name the cause (checked in this order).
CAUSE_WORDS: tuple[tuple[ExceptionCause, tuple[str, ...]], ...] = (
    ("address", ("address", "zip", "postal", "postcode", "recipient", "undeliverable")),
    ("billing", ("charge", "billing", "wallet", "payment", "card")),
    ("printfile", ("print file", "printfile", "file", "image", "dpi", "artwork")),
    (
        "transient",
        ("temporar", "timeout", "timed out", "try again", "unavailable", "processing error"),
    ),
)
# The address fields compared (the email and phone do not decide where a parcel goes).
ADDRESS_FIELDS = ("name", "address1", "address2", "city", "zip", "state_code", "country_code")

_CANCEL = Alternative(
    action="cancel_and_refund",
    rejected_because="financial and final (the payment goes back, the order is gone): "
    "never taken without a person",
)


def classify(reason: str) -> ExceptionCause:
    text = reason.lower()
    for cause, words in CAUSE_WORDS:
        if any(w in text for w in words):
            return cause
    return "unknown"


def differing_fields(
    shopify: PrintfulRecipient | None, printful: PrintfulRecipient | None
) -> tuple[str, ...]:
    """The address fields where Shopify's current address and Printful's differ (names
    only: values are customer data). Either missing: nothing to compare."""
    if shopify is None or printful is None:
        return ()

    def norm(value: str | None) -> str:
        return " ".join((value or "").split()).casefold()

    return tuple(
        f for f in ADDRESS_FIELDS if norm(getattr(shopify, f)) != norm(getattr(printful, f))
    )


def triage(
    *,
    topic: ExceptionTopic,
    reason: str,
    printful_status: str,
    shopify_address: PrintfulRecipient | None,
    printful_address: PrintfulRecipient | None,
    retries_done: int,
    max_retries: int,
) -> Diagnosis:
    if topic == "cancel_requested":
        return _cancel_in_production(reason, printful_status)
    cause = classify(reason)
    what = "put on hold" if topic == "order_put_hold" else "failed"
    evidence = [
        f"Printful {topic}: {reason[:200] or '(no reason given)'}",
        f"Printful order status now: {printful_status}",
    ]
    if cause == "address":
        return _address(what, evidence, shopify_address, printful_address)
    if cause == "transient":
        return _transient(what, evidence, topic, retries_done, max_retries)
    return _needs_a_person(cause, what, evidence)


def _address(
    what: str,
    evidence: list[str],
    shopify: PrintfulRecipient | None,
    printful: PrintfulRecipient | None,
) -> Diagnosis:
    changed = differing_fields(shopify, printful)
    if shopify is None:
        evidence.append("Shopify has no shipping address for the order")
    elif changed:
        evidence.append(f"Shopify's current shipping address differs in: {', '.join(changed)}")
        return Diagnosis(
            cause="address",
            summary=f"The order was {what} for its address; the customer's address in "
            "Shopify has been corrected since: send it to Printful.",
            evidence=tuple(evidence),
            alternatives=(
                Alternative(
                    action="retry",
                    rejected_because="re-submitting the same address would be refused again",
                ),
                Alternative(
                    action="escalate",
                    rejected_because="a safe fix exists: the customer's own current address, "
                    "and no money moves",
                ),
                _CANCEL,
            ),
            recommended="correct_address",
            automatic=True,
        )
    else:
        evidence.append("Shopify's shipping address is the one Printful already has")
    return Diagnosis(
        cause="address",
        summary=f"The order was {what} for its address and Shopify has no better one: "
        "the customer has to give a deliverable address.",
        evidence=tuple(evidence),
        alternatives=(
            Alternative(
                action="correct_address",
                rejected_because="Shopify has no different address to correct it from",
            ),
            Alternative(action="retry", rejected_because="the same address would be refused again"),
            _CANCEL,
        ),
        recommended="contact_customer",
        automatic=False,
    )


def _transient(
    what: str, evidence: list[str], topic: ExceptionTopic, retries_done: int, max_retries: int
) -> Diagnosis:
    evidence.append(f"re-submissions so far: {retries_done} of {max_retries}")
    if topic == "order_failed" and retries_done < max_retries:
        return Diagnosis(
            cause="transient",
            summary=f"The order {what} on a passing error at Printful: re-submit it.",
            evidence=tuple(evidence),
            alternatives=(
                Alternative(
                    action="escalate",
                    rejected_because="a re-submission is safe (nothing is charged twice, "
                    f"the order keeps its id) and bounded at {max_retries}",
                ),
                Alternative(
                    action="correct_address", rejected_because="nothing points at the address"
                ),
                _CANCEL,
            ),
            recommended="retry",
            automatic=True,
        )
    why = (
        f"re-submitted {retries_done} times already (the bound is {max_retries})"
        if topic == "order_failed"
        else "a held order is not re-submitted: Printful releases it"
    )
    return Diagnosis(
        cause="transient",
        summary=f"The order {what} on what looks like a passing error, but {why}: "
        "a person decides.",
        evidence=tuple(evidence),
        alternatives=(Alternative(action="retry", rejected_because=why), _CANCEL),
        recommended="fix",
        automatic=False,
    )


def _needs_a_person(cause: ExceptionCause, what: str, evidence: list[str]) -> Diagnosis:
    problem = {
        "billing": "Printful could not charge the store",
        "printfile": "Printful cannot use the print file",
        "unknown": "Printful gave a reason this flow does not recognise",
    }.get(cause, "Printful reported a problem")
    return Diagnosis(
        cause=cause,
        summary=f"The order was {what}: {problem}. Fix it at Printful, then choose fix.",
        evidence=tuple(evidence),
        alternatives=(
            Alternative(
                action="retry",
                rejected_because="nothing changed that would make a re-submission pass",
            ),
            Alternative(action="correct_address", rejected_because="nothing points at the address"),
            _CANCEL,
        ),
        recommended="fix",
        automatic=False,
    )


def _cancel_in_production(reason: str, printful_status: str) -> Diagnosis:
    return Diagnosis(
        cause="cancel_in_production",
        summary="The cancellation came after Printful started making the order: it can no "
        "longer be cancelled there and will ship. Tell the customer it ships and how to "
        "return it (contact_customer), or refund anyway (cancel_and_refund).",
        evidence=(
            f"cancellation requested: {reason[:200] or '(no detail given)'}",
            f"Printful order status now: {printful_status}",
        ),
        alternatives=(
            Alternative(
                action="cancel_at_printful",
                rejected_because="Printful refuses to cancel an order once production started",
            ),
            Alternative(
                action="fix",
                rejected_because="nothing is wrong with the order: the cancellation came late",
            ),
            Alternative(
                action="cancel_and_refund",
                rejected_because="the goods are being made and paid for at Printful: refunding "
                "them anyway is a person's decision (then the cancellation's own approval "
                "rules apply), never taken by the flow",
            ),
        ),
        recommended="contact_customer",
        automatic=False,
    )
