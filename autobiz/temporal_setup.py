"""Register AutoBiz's custom search attributes on a Temporal namespace (idempotent).

The dev server gets them from ``--search-attribute`` flags; a self-hosted server (the
compose stack's ``temporal``, a Helm install) gets them from ``autobiz temporal setup``,
which runs this through the SDK's operator service. A key already registered with the
type AutoBiz needs is left alone; one registered with another type is an error (a
workflow would fail to upsert it), never silently changed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client

from autobiz.errors import AutobizError
from autobiz.search_attributes import SEARCH_ATTRIBUTE_TYPES
from autobiz.settings import Settings
from kernel.codes import ErrorCode

# The `temporal` CLI's spelling -> the API's enum.
_TYPES: dict[str, IndexedValueType.ValueType] = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "Text": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}


@dataclass(frozen=True)
class SetupReport:
    namespace: str
    created: list[str]
    already_present: list[str]


async def register_search_attributes(
    client: Client, namespace: str, wanted: dict[str, str] = SEARCH_ATTRIBUTE_TYPES
) -> SetupReport:
    """Add the keys of ``wanted`` the namespace lacks; refuse a key of another type."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    present = dict(listed.custom_attributes)
    conflicts = [
        f"{key} is {IndexedValueType.Name(present[key])}, AutoBiz needs {kind}"
        for key, kind in wanted.items()
        if key in present and present[key] != _TYPES[kind]
    ]
    if conflicts:
        raise AutobizError(
            f"search attributes of another type on namespace {namespace}: " + "; ".join(conflicts),
            code=ErrorCode.SEARCH_ATTRIBUTES_MISSING,
            hint="remove them (temporal operator search-attribute remove) or use a new namespace",
        )
    missing = {key: _TYPES[kind] for key, kind in wanted.items() if key not in present}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return SetupReport(
        namespace=namespace,
        created=sorted(missing),
        already_present=sorted(k for k in wanted if k in present),
    )


async def connect_with_retry(settings: Settings, wait_seconds: float) -> Client:
    """Connect, retrying for up to ``wait_seconds`` (a server still starting, as in a
    compose stack where this job starts together with Temporal)."""
    from autobiz.temporal_client import connect, describe_target

    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        try:
            return await connect(settings)
        except RuntimeError as exc:  # the SDK's "Failed client connect"
            if loop.time() >= deadline:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise AutobizError(
                    f"cannot reach Temporal at {describe_target(settings)}: {first}",
                    code=ErrorCode.TEMPORAL_UNREACHABLE,
                    hint="check TEMPORAL_ADDRESS / AUTOBIZ_TEMPORAL__ADDRESS",
                ) from None
            await asyncio.sleep(1.0)


async def setup(settings: Settings, wait_seconds: float) -> SetupReport:
    client = await connect_with_retry(settings, wait_seconds)
    return await register_search_attributes(client, client.namespace)
