"""The webhook ingress as a service of the local stack (to be added to ``Stack``)."""

from __future__ import annotations

import sys
import time

import httpx

from autobiz.devstack.process import spawn
from autobiz.devstack.services import PortSpec, Service, ServiceStatus
from autobiz.errors import ServiceStartError


class IngressService(Service):
    name = "ingress"

    @property
    def base_url(self) -> str:
        ing = self.settings.ingress
        return f"http://{ing.host}:{ing.port}"

    @property
    def webhook_target(self) -> str:
        """What the sandbox's ``webhook_target`` should be (it appends /{provider})."""
        return f"{self.base_url}/webhooks"

    def ports(self) -> list[PortSpec]:
        ing = self.settings.ingress
        return [PortSpec(ing.host, ing.port, "webhook ingress", "AUTOBIZ_INGRESS__PORT")]

    def command(self) -> list[str]:
        return [sys.executable, "-m", "autobiz.cli.main", "ingress"]

    def status(self) -> ServiceStatus:
        rec = self.record()
        return ServiceStatus(
            name=self.name,
            state="running" if rec else "stopped",
            pid=rec.pid if rec else None,
            address=f"{self.settings.ingress.host}:{self.settings.ingress.port}",
            url=f"{self.base_url}/readyz",
            log_file=str(self.log_file),
            details={"webhook_target": self.webhook_target},
        )

    def ready(self) -> bool:
        try:
            response = httpx.get(f"{self.base_url}/readyz", timeout=1.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def start(self) -> ServiceStatus:
        rec = spawn(self.name, self.command(), log_file=self.log_file)
        self.pidfiles.write(rec)
        deadline = time.monotonic() + 30
        while not self.ready():
            if not rec.alive():
                self.stop()
                raise ServiceStartError("the ingress exited during start-up:\n" + self._tail_log())
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceStartError("the ingress did not become ready in 30s")
            time.sleep(0.2)
        return self.status()
