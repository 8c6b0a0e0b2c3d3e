"""`autobiz sandbox` as a user runs it: --help, and as a service of `autobiz dev up`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from autobiz.cli.main import app
from autobiz.devstack.process import PidFiles
from autobiz.devstack.sandbox_service import SandboxService
from autobiz.devstack.stack import Stack
from autobiz.settings import SandboxSettings, Settings
from tests.support.stack import free_port


@pytest.mark.unit
def test_help_explains_the_control_api() -> None:
    result = CliRunner().invoke(app, ["sandbox", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    for needle in ("/_control", "/reset", "/faults", "commit_then_drop", "/webhooks", "advance"):
        assert needle in result.output


@pytest.mark.unit
def test_dev_stack_includes_the_sandbox() -> None:
    assert any(isinstance(s, SandboxService) for s in Stack(Settings()).services)


@pytest.mark.e2e
def test_sandbox_service_starts_standalone_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("AUTOBIZ_SANDBOX__PORT", str(port))
    settings = Settings(home=tmp_path, sandbox=SandboxSettings(port=port))
    service = SandboxService(settings, PidFiles(tmp_path / "run"))
    status = service.start()
    try:
        assert status.state == "running"
        assert httpx.get(f"http://127.0.0.1:{port}/_control/health").json() == {"status": "ok"}
    finally:
        assert service.stop()
    assert service.status().state == "stopped"
