"""SendGrid Inbound Parse at ``/webhooks/sendgrid/inbound``: the parse URL's Basic
credential is the tenant's (wrong, missing or another tenant's: 401, nothing stored), the
form is stored parsed, a redelivery (same Message-ID) is one event and one hand-off to
the WISMO run named by the Message-ID."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from autobiz.db.database import Database
from autobiz.settings import IngressSettings
from ingress.handoff import TemporalHandoff
from ingress.tenants import StaticWebhookSecrets
from tests.conftest import new_tenant
from tests.ingress.conftest import Harness, HarnessFactory, tenant_config
from tests.ingress.support import RecordingHandoff
from workflows.ids import wismo_workflow_id

pytestmark = pytest.mark.integration

PATH = "/webhooks/sendgrid/inbound"


def _credential(user: str) -> str:
    return f"{user}:{secrets.token_hex(16)}"


def _basic(credential: str) -> str:
    return "Basic " + base64.b64encode(credential.encode()).decode()


Files = list[tuple[str, str, bytes]]


def form(
    fields: dict[str, str], files: Files | None = None, encodings: dict[str, str] | None = None
) -> tuple[bytes, str]:
    """``multipart/form-data`` written here by hand (not by the code under test); each
    field in UTF-8 unless ``encodings`` names another codec for it."""
    boundary = "xYzZY" + secrets.token_hex(6)
    out = b""
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode((encodings or {}).get(name, "utf-8")) + b"\r\n"
    for name, filename, content in files or []:
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: text/plain\r\n\r\n'
            ).encode()
            + content
            + b"\r\n"
        )
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def email_fields(
    message_id: str | None = "<abc-1@mail.customer.test>", **over: str
) -> dict[str, str]:
    headers = "From: Ada <ada@customer.test>\nTo: support@shop.test\nSubject: Where is #1001?\n"
    if message_id is not None:
        headers += f"Message-ID: {message_id}\n"
    fields = {
        "headers": headers,
        "from": "Ada <ada@customer.test>",
        "to": "support@shop.test",
        "subject": "Where is #1001?",
        "text": "Hello, where is my order #1001?",
        "envelope": '{"to":["support@shop.test"],"from":"ada@customer.test"}',
        "charsets": '{"to":"UTF-8","from":"UTF-8","subject":"UTF-8","text":"UTF-8"}',
        "SPF": "pass",
        "dkim": "{@customer.test : pass}",
        "sender_ip": "203.0.113.7",
        "spam_score": "0.1",
        "attachments": "0",
    }
    fields.update(over)
    return fields


async def post(
    h: Harness,
    fields: dict[str, str],
    *,
    auth: str | None,
    files: Files | None = None,
    encodings: dict[str, str] | None = None,
    query: str = "",
) -> httpx.Response:
    body, content_type = form(fields, files, encodings)
    headers = {"Content-Type": content_type}
    if auth is not None:
        headers["Authorization"] = auth
    return await h.http.post(PATH + query, content=body, headers=headers)


async def _ingress(
    make_ingress: HarnessFactory, tenant: str, credential: str, **kw: Any
) -> Harness:
    config = tenant_config(tenant, sendgrid=[SecretStr(credential)])
    return await make_ingress(secrets=StaticWebhookSecrets({tenant: config}), **kw)


@pytest.mark.parametrize(
    "auth",
    [
        None,
        "Bearer nope",
        "Basic !!!not-base64",
        "wrong-password",
        "wrong-user",
    ],
)
async def test_without_the_credential_401_and_nothing_stored(
    make_ingress: HarnessFactory, tenant: str, auth: str | None
) -> None:
    credential = _credential("shop-a")
    h = await _ingress(make_ingress, tenant, credential)
    if auth == "wrong-password":
        auth = _basic(credential[:-1] + ("0" if credential[-1] != "0" else "1"))
    elif auth == "wrong-user":
        auth = _basic("shop-b:" + credential.partition(":")[2])
    resp = await post(h, email_fields(), auth=auth)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Basic")
    assert await h.rows() == []
    reason = "no_secret" if auth is None else None  # no user name: no candidate at all
    if reason:
        assert (
            h.metric("autobiz_ingress_signature_failures_total", source="sendgrid", reason=reason)
            == 1
        )


async def test_another_tenants_credential_never_reaches_this_tenant(
    make_ingress: HarnessFactory, database: Database, tenant: str
) -> None:
    other = await new_tenant(database, "b")
    mine, theirs = _credential("shop-a"), _credential("shop-b")
    secrets_ = StaticWebhookSecrets(
        {
            tenant: tenant_config(tenant, sendgrid=[SecretStr(mine)]),
            other: tenant_config(other, sendgrid=[SecretStr(theirs)]),
        }
    )
    h = await make_ingress(secrets=secrets_)
    # Their credential with a hint naming this tenant: refused, nothing anywhere.
    refused = await post(h, email_fields(), auth=_basic(theirs), query=f"?tenant={tenant}")
    assert refused.status_code == 401
    assert await h.rows() == [] and await h.rows(other) == []
    # Their credential alone: the email is theirs, stored in their store only.
    stored = await post(h, email_fields(), auth=_basic(theirs))
    assert stored.status_code == 200 and stored.json()["status"] == "pending"
    assert await h.rows() == []
    assert [r["source"] for r in await h.rows(other)] == ["sendgrid"]


async def test_the_form_is_stored_parsed(make_ingress: HarnessFactory, tenant: str) -> None:
    credential = _credential("shop-a")
    h = await _ingress(make_ingress, tenant, credential)
    fields = email_fields()
    fields["headers"] += "In-Reply-To: <prev@shop.test>\n"
    files = [("attachment1", "photo.txt", b"not really a photo")]
    resp = await post(h, fields, auth=_basic(credential), files=files)
    assert resp.status_code == 200 and resp.json()["status"] == "pending"
    (row,) = await h.rows()
    assert row["source"] == "sendgrid" and row["topic"] == "inbound"
    assert row["status"] == "pending" and row["status_reason"] is None
    payload = row["payload"]
    assert payload["message_id"] == "<abc-1@mail.customer.test>"
    assert payload["in_reply_to"] == "<prev@shop.test>"
    assert payload["from"] == "Ada <ada@customer.test>"
    assert payload["text"] == "Hello, where is my order #1001?"
    assert payload["envelope"] == {"to": ["support@shop.test"], "from": "ada@customer.test"}
    assert payload["SPF"] == "pass" and payload["sender_ip"] == "203.0.113.7"
    (attachment,) = payload["attachment_files"]
    assert attachment["filename"] == "photo.txt" and attachment["size"] == 18
    assert "content" not in attachment  # described, not kept


async def test_a_text_in_its_declared_charset(make_ingress: HarnessFactory, tenant: str) -> None:
    credential = _credential("shop-a")
    h = await _ingress(make_ingress, tenant, credential)
    fields = email_fields(
        text="Grüße, wo ist #1001?", charsets='{"text":"iso-8859-1","subject":"UTF-8"}'
    )
    resp = await post(h, fields, auth=_basic(credential), encodings={"text": "latin-1"})
    assert resp.status_code == 200
    (row,) = await h.rows()
    assert row["payload"]["text"] == "Grüße, wo ist #1001?"


async def test_a_redelivery_is_one_event_and_one_run(
    make_ingress: HarnessFactory, tenant: str
) -> None:
    handoff = RecordingHandoff()
    credential = _credential("shop-a")
    h = await _ingress(make_ingress, tenant, credential, handoff=handoff)
    first = await post(h, email_fields(), auth=_basic(credential))
    # SendGrid retries with the same email; its spam check may score it anew.
    again = await post(h, email_fields(spam_score="0.2"), auth=_basic(credential))
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["status"] == "pending" and again.json()["status"] == "duplicate"
    assert len(await h.rows()) == 1
    await h.relay.run_once()
    await h.relay.run_once()
    (delivered,) = handoff.delivered
    route, workflow_id = TemporalHandoff(None, "q").plan(delivered)  # type: ignore[arg-type]
    assert route.workflow == "WISMO" and route.signal == "inbound_email"
    assert workflow_id == wismo_workflow_id(tenant, "<abc-1@mail.customer.test>")


async def test_without_a_message_id_it_is_a_dead_letter(
    make_ingress: HarnessFactory, tenant: str
) -> None:
    credential = _credential("shop-a")
    h = await _ingress(make_ingress, tenant, credential)
    resp = await post(h, email_fields(message_id=None), auth=_basic(credential))
    assert resp.status_code == 200 and resp.json()["status"] == "dead_letter"
    (row,) = await h.rows()
    assert row["status_reason"] == "missing_field: Message-ID"


async def test_not_a_form_is_a_dead_letter(make_ingress: HarnessFactory, tenant: str) -> None:
    credential = _credential("shop-a")
    h = await _ingress(make_ingress, tenant, credential)
    resp = await h.http.post(
        PATH,
        content=b'{"from": "x"}',
        headers={"Content-Type": "application/json", "Authorization": _basic(credential)},
    )
    assert resp.status_code == 200 and resp.json()["status"] == "dead_letter"
    (row,) = await h.rows()
    assert row["status_reason"].startswith("malformed_form")


async def test_body_limits_hold_before_the_credential_is_read(
    make_ingress: HarnessFactory, tenant: str
) -> None:
    credential = _credential("shop-a")
    h = await _ingress(
        make_ingress, tenant, credential, settings=IngressSettings(max_body_bytes=2048)
    )
    resp = await post(h, email_fields(text="x" * 4096), auth=_basic(credential))
    assert resp.status_code == 413
    assert await h.rows() == []
