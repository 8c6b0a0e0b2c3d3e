"""The sandbox's SendGrid as the real one behaves for WISMO: Inbound Parse posts a
customer's email as ``multipart/form-data`` with the parse URL's credential as HTTP Basic
and a Message-ID in its headers; ``/v3/mail/send`` takes a reply's headers but not the
ones SendGrid reserves."""

from __future__ import annotations

import base64

import httpx
import pytest

from ingress.inbound_email import parse_inbound
from tests.support.sandbox import Sandbox, WebhookSink

pytestmark = pytest.mark.integration


async def test_an_inbound_email_is_posted_as_inbound_parse_does(
    sandbox: Sandbox, webhook_sink: WebhookSink
) -> None:
    account = await sandbox.host("t-inbound")
    host = webhook_sink.url.removeprefix("http://")
    parse_url = (
        f"http://{account.sendgrid_parse_user}:{account.sendgrid_parse_password}@{host}/sendgrid"
    )
    await sandbox.control.webhooks(urls={"sendgrid_inbound": parse_url})
    sent = await sandbox.control.send_inbound_email(
        tenant="t-inbound",
        from_email="ada@example.com",
        from_name="Ada",
        subject="Where is #1001?",
        text="Has it shipped? Grüße",
        attachments=[{"filename": "note.txt", "content_type": "text/plain", "content": "hi"}],
    )
    assert sent["status"] == 200 and sent["message_id"].startswith("<")
    (request,) = webhook_sink.received
    assert request.path == "/webhooks/sendgrid"
    credential = f"{account.sendgrid_parse_user}:{account.sendgrid_parse_password}"
    assert (
        request.headers["authorization"]
        == "Basic " + base64.b64encode(credential.encode()).decode()
    )
    content_type = request.headers["content-type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    payload = parse_inbound(request.body, content_type)
    assert payload["message_id"] == sent["message_id"]
    assert payload["from"] == "Ada <ada@example.com>" and payload["subject"] == "Where is #1001?"
    assert payload["text"] == "Has it shipped? Grüße"
    assert payload["SPF"] == "pass" and payload["envelope"]["from"] == "ada@example.com"
    assert payload["attachments"] == "1"
    assert [f["filename"] for f in payload["attachment_files"]] == ["note.txt"]


async def test_a_wrong_password_is_sent_as_given(
    sandbox: Sandbox, webhook_sink: WebhookSink
) -> None:
    account = await sandbox.host("t-inbound-2")
    host = webhook_sink.url.removeprefix("http://")
    await sandbox.control.webhooks(
        urls={"sendgrid_inbound": f"http://{account.sendgrid_parse_user}:x@{host}/sendgrid"}
    )
    await sandbox.control.send_inbound_email(
        tenant="t-inbound-2", from_email="ada@example.com", password="guess"
    )
    (request,) = webhook_sink.received
    user = account.sendgrid_parse_user
    assert (
        request.headers["authorization"]
        == "Basic " + base64.b64encode(f"{user}:guess".encode()).decode()
    )


async def test_mail_send_takes_reply_headers_but_not_reserved_ones(sandbox: Sandbox) -> None:
    account = await sandbox.host("t-mail")
    body = {
        "personalizations": [{"to": [{"email": "ada@example.com"}]}],
        "from": {"email": "shop@autobiz.test"},
        "template_id": "d-x",
        "headers": {"In-Reply-To": "<m1@example.com>", "References": "<m1@example.com>"},
    }
    auth = {"Authorization": f"Bearer {account.sendgrid_api_key}"}
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        ok = await http.post("/sendgrid/v3/mail/send", json=body, headers=auth)
        refused = await http.post(
            "/sendgrid/v3/mail/send",
            json={**body, "headers": {"Subject": "sneaky"}},
            headers=auth,
        )
    assert ok.status_code == 202
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "headers"
