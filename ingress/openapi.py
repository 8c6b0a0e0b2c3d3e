"""The OpenAPI 3.1 document of the ingress, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from ingress import inbound_email
from ingress.authn import SIGNATURE_HEADERS
from ingress.tenants import Source

_DESCRIPTIONS = {
    Source.STRIPE: "Stripe events. `Stripe-Signature: t=<unix>,v1=<hex hmac>` over "
    "`{t}.{raw body}`; the timestamp must be within the tolerance (300 s) both ways.",
    Source.SHOPIFY: "Shopify webhooks. `X-Shopify-Hmac-Sha256`: base64 HMAC-SHA256 of the raw "
    "body (current or previous secret); the topic is `X-Shopify-Topic`.",
    Source.PRINTFUL: "Printful v2 webhooks. `x-pf-webhook-signature`: hex HMAC-SHA256 of the "
    "raw body.",
    Source.SENDGRID: "SendGrid Inbound Parse (a customer's email; `multipart/form-data`, the "
    "default payload: `headers`, `from`, `to`, `subject`, `text`, `html`, `envelope`, "
    "`charsets`, `SPF`, `dkim`, `sender_ip`, attachments). Not signed: the parse URL carries "
    "the tenant's HTTP Basic credential (`https://user:password@host/webhooks/sendgrid/inbound`"
    "), compared in constant time; the tenant is the credential's. Deduplicated by the "
    "email's `Message-ID` header.",
}

_PATHS = {Source.SENDGRID: "/webhooks/sendgrid/inbound"}


def webhook_path(source: Source) -> str:
    """Where a source posts: ``/webhooks/{source}``, Inbound Parse at ``…/sendgrid/inbound``."""
    return _PATHS.get(source, f"/webhooks/{source.value}")


_EXTRA_HEADERS = {
    Source.SHOPIFY: ["X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Webhook-Id"],
    Source.STRIPE: [],
    Source.PRINTFUL: [],
    Source.SENDGRID: [],
}


_BODIES: dict[Source, dict[str, Any]] = {
    Source.SENDGRID: {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["headers", "from"],
                "properties": {name: {"type": "string"} for name in inbound_email.FIELDS},
                "additionalProperties": {"type": "string", "format": "binary"},
            }
        }
    }
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _webhook(source: Source) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {
            "name": SIGNATURE_HEADERS[source],
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
        },
    ]
    if source is not Source.SENDGRID:
        params.append(
            {
                "name": "tenant",
                "in": "query",
                "required": False,
                "description": "Unsigned hint that narrows which tenant's secret is tried.",
                "schema": {"type": "string"},
            }
        )
    params += [
        {"name": h, "in": "header", "required": False, "schema": {"type": "string"}}
        for h in _EXTRA_HEADERS[source]
    ]
    return {
        "post": {
            "operationId": f"receive_{source.value}_webhook",
            "summary": f"Receive a {source.value} webhook",
            "description": _DESCRIPTIONS[source],
            "parameters": params,
            "requestBody": {
                "required": True,
                "content": _BODIES.get(
                    source, {"application/json": {"schema": {"type": "object"}}}
                ),
            },
            "responses": {
                "200": {
                    "description": "Stored (or already stored). Dead letters also answer 200.",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Ack"}}
                    },
                },
                "400": _error("Content-Length does not match the body."),
                "401": _error(
                    "No tenant's credential matches; nothing stored."
                    if source is Source.SENDGRID
                    else "No tenant's secret verifies the signature; nothing stored."
                ),
                "411": _error("Content-Length missing."),
                "413": _error("Body over the size limit."),
                "415": _error("Compressed (Content-Encoding) bodies are refused."),
                "503": _error("Storage unavailable; retry later (nothing acknowledged)."),
            },
        }
    }


def _probe(summary: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": {"description": "OK"}}}}


def openapi_document(version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {webhook_path(s): _webhook(s) for s in Source}
    paths["/healthz"] = _probe("Liveness: the process answers.")
    paths["/readyz"] = {
        "get": {
            "summary": "Readiness: the database answers.",
            "responses": {"200": {"description": "ready"}, "503": _error("database unreachable")},
        }
    }
    paths["/metrics"] = _probe("Prometheus metrics (text exposition format).")
    return {
        "openapi": "3.1.0",
        "info": {"title": "AutoBiz webhook ingress", "version": version},
        "paths": paths,
        "components": {
            "schemas": {
                "Ack": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {
                        "status": {
                            "type": "string",
                            "enum": ["pending", "held", "ignored", "dead_letter", "duplicate"],
                        },
                        "event_id": {"type": ["integer", "null"]},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
            }
        },
    }
