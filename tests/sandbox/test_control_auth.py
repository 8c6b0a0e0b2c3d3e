"""The sandbox control API refuses what a web page could send (issue 10).

Before: ``POST /_control/faults`` with ``Content-Type: text/plain``, no credential and a
foreign ``Origin`` — what any page a developer opens can send without a CORS preflight —
armed a fault; the same for redirecting webhooks. Now: no token → 401, cross-origin →
403, not JSON → 415, each with a JSON error body and nothing changed.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from autobiz.devstack.process import PidFiles
from autobiz.devstack.sandbox_service import SandboxService
from autobiz.settings import SandboxSettings, Settings
from sandbox.control_auth import ensure_control_token, read_control_token, token_file
from sandbox.control_client import SandboxControl
from tests.support.sandbox import Sandbox
from tests.support.stack import free_port

FAULT = {"kind": "error", "path": "/stripe/*", "status": 500, "count": 5}
EVIL = "http://evil.example"


async def _rules(sandbox: Sandbox) -> list[object]:
    async with httpx.AsyncClient(base_url=sandbox.url, headers=sandbox.control.auth_headers) as h:
        rules: list[object] = (await h.get("/_control/faults")).json()["rules"]
    return rules


@pytest.mark.integration
async def test_a_web_pages_simple_post_arms_nothing(sandbox: Sandbox) -> None:
    """The attack as a browser sends it: text/plain, foreign Origin, no credential."""
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        fault = await http.post(
            "/_control/faults",
            content=json.dumps(FAULT),
            headers={"Content-Type": "text/plain", "Origin": EVIL},
        )
        redirect = await http.post(
            "/_control/webhooks",
            content=json.dumps({"target_url": "http://127.0.0.1:1/x"}),
            headers={"Content-Type": "text/plain", "Origin": EVIL},
        )
    assert (fault.status_code, redirect.status_code) == (403, 403)
    assert "cross-origin" in fault.json()["error"]
    assert await _rules(sandbox) == []
    async with httpx.AsyncClient(base_url=sandbox.url, headers=sandbox.control.auth_headers) as h:
        assert (await h.get("/_control/webhooks")).json()["target_url"] != "http://127.0.0.1:1/x"


@pytest.mark.integration
async def test_no_or_wrong_token_is_401(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        none = await http.post("/_control/faults", json=FAULT)
        wrong = await http.post(
            "/_control/faults", json=FAULT, headers={"Authorization": "Bearer not-the-token"}
        )
        basic = await http.post(
            "/_control/reset", json={}, headers={"Authorization": "Basic dXNlcjpwYXNz"}
        )
        read = await http.get("/_control/stripe/payment_intents")
        health = await http.get("/_control/health")  # liveness stays open
    for refused in (none, wrong, basic, read):
        assert refused.status_code == 401, refused.text
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "Bearer" in refused.json()["error"]
    assert health.json() == {"status": "ok"}
    assert await _rules(sandbox) == []


@pytest.mark.integration
async def test_cross_origin_is_403_even_with_the_token(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url, headers=sandbox.control.auth_headers) as h:
        for origin in (EVIL, "null", "http://127.0.0.1:1", "https://127.0.0.1"):
            refused = await h.post("/_control/faults", json=FAULT, headers={"Origin": origin})
            assert refused.status_code == 403, (origin, refused.text)
            assert refused.json()["error"]
        same = await h.post("/_control/faults", json=FAULT, headers={"Origin": sandbox.url})
    assert same.status_code == 200
    assert len(await _rules(sandbox)) == 1


@pytest.mark.integration
async def test_a_post_that_is_not_json_is_415(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url, headers=sandbox.control.auth_headers) as h:
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"Content-Type": content_type} if content_type else {}
            refused = await h.post("/_control/faults", content=json.dumps(FAULT), headers=headers)
            assert refused.status_code == 415, (content_type, refused.text)
            assert "application/json" in refused.json()["error"]
        ok = await h.post(
            "/_control/faults",
            content=json.dumps(FAULT),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
    assert ok.status_code == 200
    assert len(await _rules(sandbox)) == 1


@pytest.mark.integration
async def test_with_the_token_the_client_drives_it(sandbox: Sandbox) -> None:
    await sandbox.control.fault("error", "/stripe/*", count=1)
    assert len(await _rules(sandbox)) == 1
    await sandbox.control.reset()  # a POST with no body is sent as JSON {}
    assert await _rules(sandbox) == []
    anonymous = SandboxControl(sandbox.url, settings=Settings(home=Path("/nonexistent")))
    try:
        with pytest.raises(Exception) as refused:
            await anonymous.reset()
        assert getattr(refused.value, "code", None) == "SANDBOX_TOKEN_MISSING"
    finally:
        await anonymous.aclose()


@pytest.mark.unit
def test_an_unset_token_is_generated_into_an_owner_only_file(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first, path = ensure_control_token(settings)
    assert path == token_file(settings) and path is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert first.sandbox.control_token is not None
    token = first.sandbox.control_token.get_secret_value()
    assert len(token) >= 32 and read_control_token(settings) == token
    # Each start makes a new one; a file someone widened is tightened again.
    os.chmod(path, 0o644)
    second, _ = ensure_control_token(settings)
    assert second.sandbox.control_token is not None
    assert second.sandbox.control_token.get_secret_value() != token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # A configured token is used as is, and no file is written.
    sandbox = SandboxSettings(control_token=SecretStr("t0k"))
    configured = Settings(home=tmp_path / "other", sandbox=sandbox)
    assert ensure_control_token(configured) == (configured, None)
    assert read_control_token(configured) == "t0k"
    assert not token_file(configured).exists()


@pytest.mark.e2e
async def test_autobiz_sandbox_says_where_the_token_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `autobiz dev up` starts it: a process, a token file under AUTOBIZ_HOME named in
    its output and in `dev status`, and a client that finds it there."""
    port = free_port()
    monkeypatch.setenv("AUTOBIZ_SANDBOX__PORT", str(port))
    monkeypatch.setenv("AUTOBIZ_HOME", str(tmp_path))
    monkeypatch.delenv("AUTOBIZ_SANDBOX__CONTROL_TOKEN", raising=False)
    settings = Settings(home=tmp_path, sandbox=SandboxSettings(port=port))
    service = SandboxService(settings, PidFiles(tmp_path / "run"))
    service.start()
    try:
        path = token_file(settings)
        assert f"control API token: {path}" in service.log_file.read_text()
        assert service.status().details["control_token"] == str(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.post("/_control/reset", json={})).status_code == 401
        control = SandboxControl(url, settings=settings)
        try:
            await control.reset()
            assert await control.health()
        finally:
            await control.aclose()
    finally:
        assert service.stop()
