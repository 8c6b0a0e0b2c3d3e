"""Body limits over real HTTP: refused before any signature check, nothing stored."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import httpx
import pytest

from autobiz.settings import IngressSettings
from ingress.body import BodyRejected, read_limited_body
from tests.ingress.conftest import Harness, HarnessFactory, serve_http
from tests.ingress.support import dumps, shopify_header, shopify_order, stripe_event, stripe_header

pytestmark = pytest.mark.integration

LIMIT = 4096


def checks(h: Harness, source: str) -> float:
    return h.metric("autobiz_ingress_signature_checks_total", source=source)


async def test_oversized_body_413_before_verification(make_ingress: HarnessFactory) -> None:
    h = await make_ingress(settings=IngressSettings(max_body_bytes=LIMIT))
    body = dumps(stripe_event("payment_intent.created", {"id": "pi", "pad": "x" * LIMIT}))
    async with serve_http(h.app) as url, httpx.AsyncClient(base_url=url) as http:
        resp = await http.post(
            "/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": stripe_header(body, t=h.clock.unix)},
        )
    assert resp.status_code == 413
    assert checks(h, "stripe") == 0 and await h.rows() == []


async def test_gzip_bomb_refused_415_never_inflated(make_ingress: HarnessFactory) -> None:
    h = await make_ingress(settings=IngressSettings(max_body_bytes=1_048_576))
    bomb = gzip.compress(b"\0" * (256 << 20), compresslevel=9)  # 256 MiB of zeros
    assert len(bomb) < 1_048_576
    async with serve_http(h.app) as url, httpx.AsyncClient(base_url=url) as http:
        resp = await http.post(
            "/webhooks/shopify",
            content=bomb,
            headers={
                "Content-Encoding": "gzip",
                "X-Shopify-Topic": "orders/paid",
                "X-Shopify-Hmac-Sha256": shopify_header(bomb),
            },
        )
    assert resp.status_code == 415
    assert checks(h, "shopify") == 0 and await h.rows() == []


async def test_missing_content_length_411(make_ingress: HarnessFactory) -> None:
    h = await make_ingress()
    body = dumps(shopify_order(1))

    async def chunked() -> AsyncIterator[bytes]:
        yield body  # a generator body goes out as Transfer-Encoding: chunked

    async with serve_http(h.app) as url, httpx.AsyncClient(base_url=url) as http:
        headers = {"X-Shopify-Topic": "orders/paid", "X-Shopify-Hmac-Sha256": shopify_header(body)}
        resp = await http.post("/webhooks/shopify", content=chunked(), headers=headers)
    assert resp.status_code == 411
    assert checks(h, "shopify") == 0 and await h.rows() == []


async def test_streamed_body_longer_than_announced_is_cut_at_the_limit() -> None:
    from starlette.requests import Request

    sent: list[int] = []

    async def receive() -> dict[str, object]:
        sent.append(1)
        return {"type": "http.request", "body": b"x" * 1024, "more_body": len(sent) < 1000}

    scope = {"type": "http", "method": "POST", "headers": [(b"content-length", b"100")]}
    with pytest.raises(BodyRejected) as info:
        await read_limited_body(Request(scope, receive), limit=LIMIT)
    assert info.value.status == 413 and len(sent) == 1  # stopped at the first oversized chunk


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"content-length": "12x"}, 400), ({"content-length": "10", "content-encoding": "br"}, 415)],
)
async def test_bad_length_or_encoding(headers: dict[str, str], status: int) -> None:
    from starlette.requests import Request

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"0123456789", "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    with pytest.raises(BodyRejected) as info:
        await read_limited_body(Request(scope, receive), limit=LIMIT)
    assert info.value.status == status
