"""The custom search attributes every workflow keeps current (DESIGN §2).

Pure definitions: workflows import the keys, the local stack and the test harness
register the types.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

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
