"""The provider sandbox as a service of the local stack (``autobiz dev up`` starts it)."""

from __future__ import annotations

import sys
import time

import httpx

from autobiz.devstack.process import spawn
from autobiz.devstack.services import PortSpec, Service, ServiceStatus
from autobiz.errors import ServiceStartError


class SandboxService(Service):
    name = "sandbox"

    @property
    def base_url(self) -> str:
        sb = self.settings.sandbox
        return f"http://{sb.host}:{sb.port}"

    def ports(self) -> list[PortSpec]:
        sb = self.settings.sandbox
        return [PortSpec(sb.host, sb.port, "provider sandbox", "AUTOBIZ_SANDBOX__PORT")]

    # Extra environment for the process (the stack points webhooks at the ingress).
    env: dict[str, str] | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "autobiz.cli.main", "sandbox"]

    def status(self) -> ServiceStatus:
        rec = self.record()
        return ServiceStatus(
            name=self.name,
            state="running" if rec else "stopped",
            pid=rec.pid if rec else None,
            address=f"{self.settings.sandbox.host}:{self.settings.sandbox.port}",
            url=f"{self.base_url}/_control/health",
            log_file=str(self.log_file),
        )

    def healthy(self) -> bool:
        try:
            response = httpx.get(f"{self.base_url}/_control/health", timeout=1.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def start(self) -> ServiceStatus:
        rec = spawn(self.name, self.command(), log_file=self.log_file, env=self.env)
        self.pidfiles.write(rec)
        deadline = time.monotonic() + 30
        while not self.healthy():
            if not rec.alive():
                self.stop()
                raise ServiceStartError("the sandbox exited during start-up:\n" + self._tail_log())
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceStartError("the sandbox did not become healthy in 30s")
            time.sleep(0.2)
        return self.status()
