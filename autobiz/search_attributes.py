"""The custom search attributes every workflow keeps current (DESIGN §2).

Pure definitions: workflows import the keys, the starters the values a new run begins
with, the local stack and the test harness register the types.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
FLOW_STATE = SearchAttributeKey.for_keyword("FlowState")
APPROVAL_PENDING = SearchAttributeKey.for_bool("ApprovalPending")

# Name -> type as the `temporal` CLI spells it.
SEARCH_ATTRIBUTE_TYPES: dict[str, str] = {
    "TenantId": "Keyword",
    "OrderId": "Keyword",
    "FlowState": "Keyword",
    "ApprovalPending": "Bool",
}


def initial_attributes(tenant_id: str, order_id: str | None = None) -> TypedSearchAttributes:
    """What a started run shows before its first step: its tenant, its order (a flow
    keyed by one; ``None``: a flow with no order), state ``received``, no approval."""
    order = [] if order_id is None else [SearchAttributePair(ORDER_ID, order_id)]
    return TypedSearchAttributes(
        [
            SearchAttributePair(TENANT_ID, tenant_id),
            *order,
            SearchAttributePair(FLOW_STATE, "received"),
            SearchAttributePair(APPROVAL_PENDING, False),
        ]
    )
