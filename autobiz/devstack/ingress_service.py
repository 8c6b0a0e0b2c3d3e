"""The webhook ingress as a service of the local stack."""

from __future__ import annotations

from autobiz.devstack.app_service import HttpAppService
from autobiz.devstack.services import PortSpec


class IngressService(HttpAppService):
    name = "ingress"
    subcommand = "ingress"
    health_path = "/readyz"

    def listens_on(self) -> tuple[str, int]:
        return self.settings.ingress.host, self.settings.ingress.port

    @property
    def webhook_target(self) -> str:
        """What the sandbox's ``webhook_target`` should be (it appends /{provider})."""
        return f"{self.base_url}/webhooks"

    def ports(self) -> list[PortSpec]:
        return [PortSpec(self.host, self.port, "webhook ingress", "AUTOBIZ_INGRESS__PORT")]

    def details(self) -> dict[str, str]:
        return {"webhook_target": self.webhook_target}
