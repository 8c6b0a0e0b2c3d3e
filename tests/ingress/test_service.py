"""`autobiz ingress` as a process (IngressService), built from Settings alone: a
webhook signed with the settings' secret is stored for the default tenant."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from autobiz.db.database import Database
from autobiz.devstack.ingress_service import IngressService
from autobiz.devstack.process import PidFiles
from autobiz.settings import Settings
from tests.ingress.support import dumps, stripe_event, stripe_header
from tests.support.postgres import ProvisionedDatabase
from tests.support.stack import free_port

pytestmark = pytest.mark.e2e


async def test_ingress_process_stores_a_signed_event(
    pg_database: ProvisionedDatabase,
    database: Database,
    tenant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    env = {
        "AUTOBIZ_DATABASE_URL": pg_database.admin_dsn,
        "AUTOBIZ_APP_DATABASE_URL": pg_database.app_dsn,
        "AUTOBIZ_HOME": str(tmp_path),
        "AUTOBIZ_INGRESS__PORT": str(port),
        "AUTOBIZ_INGRESS__DEFAULT_TENANT": tenant,
        "AUTOBIZ_STRIPE__WEBHOOK_SECRET": "whsec_service_test",
        "AUTOBIZ_TEMPORAL__PORT": str(free_port()),  # no Temporal: events stay pending
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    service = IngressService(settings, PidFiles(tmp_path / "run"))
    service.check_ports()
    service.start()
    try:
        assert service.status().state == "running"
        assert service.webhook_target == f"http://127.0.0.1:{port}/webhooks"
        body = dumps(
            stripe_event("payment_intent.payment_failed", {"id": "pi_svc", "metadata": {}})
        )
        header = stripe_header(body, "whsec_service_test", t=int(time.time()))
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            resp = await http.post(
                "/webhooks/stripe", content=body, headers={"Stripe-Signature": header}
            )
            assert resp.status_code == 200, resp.text
            bad = await http.post(
                "/webhooks/stripe", content=body, headers={"Stripe-Signature": "t=1,v1=00"}
            )
            assert bad.status_code == 401
            doc = (await http.get("/openapi.json")).json()
            assert "/webhooks/printful" in doc["paths"]
    finally:
        assert service.stop()
    async with database.tenant(tenant) as s:
        rows = await s.fetch_all("SELECT topic, status, payload FROM event_store")
    assert [(r["topic"], r["status"]) for r in rows] == [
        ("payment_intent.payment_failed", "pending")
    ]
    assert json.dumps(rows[0]["payload"]).count("pi_svc") == 1
