"""The sandbox's Printful answers, as Printful publishes them: every response the client
reads, and every webhook the sandbox sends, checked against the v2 OpenAPI spec
(``shared/reference/fidelity/printful-v2-openapi.2025-02.json``).

``jsonschema`` is not a dependency, so a small structural check does the job: ``$ref``,
``allOf``, ``oneOf`` (by discriminator), ``nullable``, ``type``, ``enum``, ``required``,
``properties`` and ``items`` — the parts of OpenAPI 3.0 the Printful spec uses here.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from autobiz.providers.printful_client import OrderItem, PrintfulOrders, Recipient
from tests.support.reference import fidelity_file
from tests.support.sandbox import Sandbox, WebhookSink

pytestmark = pytest.mark.integration

SPEC_NAME = "printful-v2-openapi.2025-02.json"
Json = dict[str, Any]


def _spec_path() -> Path | None:
    return fidelity_file(SPEC_NAME)


@cache
def spec() -> Json:
    path = _spec_path()
    if path is None:
        pytest.skip(f"{SPEC_NAME} is not in ../shared/reference/fidelity")
    loaded: Json = json.loads(path.read_text())
    return loaded


def resolve(node: Json) -> Json:
    while "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def problems(schema: Json, value: Any, where: str = "$") -> list[str]:
    """Where ``value`` does not fit ``schema`` (empty when it does)."""
    schema = resolve(schema)
    found: list[str] = []
    for part in schema.get("allOf", []):
        found += problems(part, value, where)
    if "oneOf" in schema or "anyOf" in schema:
        found += _one_of(schema, value, where)
    if value is None:
        if "type" in schema and not schema.get("nullable"):
            found.append(f"{where}: null, not {schema['type']}")
        return found
    kind = schema.get("type")
    if kind is not None:
        ok = isinstance(value, TYPES[kind]) and not (kind != "boolean" and value is True)
        ok = ok and not (kind in ("integer", "number") and isinstance(value, bool))
        if not ok:
            return [*found, f"{where}: {type(value).__name__}, not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        found += [
            f"{where}: no {name!r}" for name in schema.get("required", []) if name not in value
        ]
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                found += problems(sub, value[name], f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += problems(schema["items"], item, f"{where}[{index}]")
    return found


def _one_of(schema: Json, value: Any, where: str) -> list[str]:
    options = schema.get("oneOf") or schema.get("anyOf") or []
    mapping = (schema.get("discriminator") or {}).get("mapping")
    if mapping and isinstance(value, dict):
        prop = schema["discriminator"]["propertyName"]
        if value.get(prop) not in mapping:
            return [f"{where}.{prop}: {value.get(prop)!r} not in {sorted(mapping)}"]
        return problems({"$ref": mapping[value[prop]]}, value, where)
    results = [problems(option, value, where) for option in options]
    return [] if any(not r for r in results) else min(results, key=len)


def response_schema(path: str, method: str, status: int) -> Json | None:
    """The JSON schema of one documented answer (``None`` for a bodiless one, like 204).
    A status the path does not list is checked against the shared response of that name."""
    responses = spec()["paths"][path][method]["responses"]
    node = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
    if node is None:
        shared = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 409: "Conflict"}
        node = {"$ref": f"#/components/responses/{shared[status]}"}
    content = resolve(node).get("content")
    if content is None:
        return None
    schema: Json = content["application/json"]["schema"]
    return schema


def assert_conforms(response: httpx.Response, path: str, method: str) -> None:
    schema = response_schema(path, method, response.status_code)
    where = f"{method.upper()} {path} → {response.status_code}"
    if schema is None:
        assert response.content == b"", f"{where}: a body where the spec has none"
        return
    found = problems(schema, response.json())
    assert not found, f"{where}:\n" + "\n".join(found)


# -- the checker itself -------------------------------------------------------------


def test_the_checker_finds_what_is_missing_or_mistyped() -> None:
    shipment = {"$ref": "#/components/schemas/WebhookShipmentData"}
    assert problems(shipment, {"id": "1"}) != []
    assert any("tracking_number" in p for p in problems(shipment, {"id": 1}))
    order = {"$ref": "#/components/schemas/Order"}
    assert any("costs" in p for p in problems(order, {"id": 1}))


# -- the answers the client reads -----------------------------------------------------

RECIPIENT = Recipient(name="Ada", address1="1 Main St", city="X", country_code="US", zip="1")
ITEMS = [OrderItem(catalog_variant_id=4012, quantity=2)]
ORDERS, ORDER = "/v2/orders", "/v2/orders/{order_id}"
CONFIRM, SHIPMENTS = "/v2/orders/{order_id}/confirmation", "/v2/orders/{order_id}/shipments"


def _raw(sandbox: Sandbox, token: str | None = None) -> httpx.AsyncClient:
    cfg = sandbox.settings.printful
    return httpx.AsyncClient(
        base_url=cfg.api_base,
        headers={"Authorization": f"Bearer {token or cfg.api_token.get_secret_value()}"},
    )


def _create_body(external_id: str) -> Json:
    return {
        "external_id": external_id,
        "recipient": RECIPIENT.model_dump(exclude_none=True),
        "order_items": [i.model_dump(exclude_none=True) for i in ITEMS],
    }


async def test_order_answers_conform(sandbox: Sandbox) -> None:
    async with _raw(sandbox) as pf:
        created = await pf.post(ORDERS, json=_create_body("conf-1"))
        assert created.status_code == 200
        assert_conforms(created, ORDERS, "post")
        order_id = created.json()["data"]["id"]
        assert_conforms(await pf.post(ORDERS, json=_create_body("conf-1")), ORDERS, "post")
        for ref in (order_id, "@conf-1", 999_999):
            assert_conforms(await pf.get(f"/v2/orders/{ref}"), ORDER, "get")
        confirmed = await pf.post(f"/v2/orders/{order_id}/confirmation")
        assert confirmed.status_code == 200
        assert_conforms(confirmed, CONFIRM, "post")
        again = await pf.post(f"/v2/orders/{order_id}/confirmation")
        assert again.status_code == 400
        assert_conforms(again, CONFIRM, "post")
        empty = await pf.get(f"/v2/orders/{order_id}/shipments")
        assert_conforms(empty, SHIPMENTS, "get")
        # v2 DELETE deletes drafts and failed orders; a confirmed one is v1's to cancel.
        kept = await pf.delete(f"/v2/orders/{order_id}")
        assert kept.status_code == 409
        assert_conforms(kept, ORDER, "delete")
        cancelled = await pf.delete(f"/orders/{order_id}")
        assert (cancelled.status_code, cancelled.json()["result"]["status"]) == (200, "canceled")
        deleted = await pf.delete(f"/v2/orders/{order_id}")
        assert deleted.status_code == 204
        assert_conforms(deleted, ORDER, "delete")
        assert_conforms(await pf.get(f"/v2/orders/{order_id}"), ORDER, "get")
    async with _raw(sandbox, token="pf_nobody") as stranger:
        refused = await stranger.get(f"/v2/orders/{order_id}")
        assert refused.status_code == 401
        assert_conforms(refused, ORDER, "get")


async def test_shipments_and_conflicts_conform(sandbox: Sandbox) -> None:
    async with _raw(sandbox) as pf:
        order_id = (await pf.post(ORDERS, json=_create_body("conf-2"))).json()["data"]["id"]
        await pf.post(f"/v2/orders/{order_id}/confirmation")
        await sandbox.control.advance_printful(order_id, "ship", tracking_number="TRK1")
        listed = await pf.get(f"/v2/orders/{order_id}/shipments")
        assert_conforms(listed, SHIPMENTS, "get")
        [shipment] = listed.json()["data"]
        assert "tracking_number" not in shipment  # not in Printful's Shipment schema
        refused = await pf.delete(f"/v2/orders/{order_id}")
        assert refused.status_code == 409
        assert_conforms(refused, ORDER, "delete")
        assert_conforms(await pf.get(f"/v2/orders/{order_id}"), ORDER, "get")


async def test_server_errors_conform(sandbox: Sandbox) -> None:
    await sandbox.control.fault("error", "/printful/*", status=503)
    async with _raw(sandbox) as pf:
        failed = await pf.get("/v2/orders/1")
    assert failed.status_code == 503
    assert_conforms(failed, ORDER, "get")


# -- the webhooks ---------------------------------------------------------------------


def webhook_schema(event_type: str) -> Json:
    post = spec()["x-webhooks"][event_type]["post"]
    schema: Json = resolve(post["requestBody"])["content"]["application/json"]["schema"]
    return schema


async def test_webhooks_conform(sandbox: Sandbox, webhook_sink: WebhookSink) -> None:
    await sandbox.control.webhooks(target_url=webhook_sink.url)
    client = PrintfulOrders(sandbox.settings)
    try:
        shipped = await client.create_order(external_id="conf-3", recipient=RECIPIENT, items=ITEMS)
        await client.confirm_order(shipped.id)
        held = await client.create_order(external_id="conf-4", recipient=RECIPIENT, items=ITEMS)
        await client.confirm_order(held.id)
        await sandbox.control.advance_printful(held.id, "hold", reason="address check")
        await sandbox.control.advance_printful(held.id, "release")
        await client.cancel_order(held.id)
        failed = await client.create_order(external_id="conf-5", recipient=RECIPIENT, items=ITEMS)
        await sandbox.control.advance_printful(failed.id, "fail", reason="bad artwork")
    finally:
        await client.aclose()
    await sandbox.control.advance_printful(shipped.id, "ship", tracking_number="TRK2")
    expected = {
        "order_created",
        "order_updated",
        "order_put_hold",
        "order_remove_hold",
        "order_canceled",
        "order_failed",
        "shipment_sent",
    }

    def all_types(received: list[Any]) -> bool:
        return expected <= {json.loads(r.body)["type"] for r in received}

    received = await webhook_sink.wait_for(
        lambda r: all_types(webhook_sink.for_provider("printful"))
    )
    for request in received:
        if not request.path.endswith("/printful"):
            continue
        payload = json.loads(request.body)
        found = problems(webhook_schema(payload["type"]), payload)
        assert not found, f"{payload['type']}:\n" + "\n".join(found)
        if payload["type"] == "shipment_sent":
            shipment = payload["data"]["shipment"]
            documented = resolve({"$ref": "#/components/schemas/WebhookShipmentData"})
            assert set(shipment) <= set(documented["properties"])  # no carrier
            assert shipment["tracking_number"] == "TRK2"
