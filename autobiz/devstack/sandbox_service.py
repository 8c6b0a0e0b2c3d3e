"""The provider sandbox as a service of the local stack (``autobiz dev up`` starts it)."""

from __future__ import annotations

from autobiz.devstack.app_service import HttpAppService
from autobiz.devstack.sandbox_package import sandbox_installed
from autobiz.devstack.services import PortSpec


class SandboxService(HttpAppService):
    name = "sandbox"
    subcommand = "sandbox"
    health_path = "/_control/health"

    def listens_on(self) -> tuple[str, int]:
        return self.settings.sandbox.host, self.settings.sandbox.port

    def details(self) -> dict[str, str]:
        """Where the control API's bearer token is (``autobiz dev status`` shows it)."""
        if self.settings.sandbox.control_token is not None:
            return {"control_token": "AUTOBIZ_SANDBOX__CONTROL_TOKEN"}
        if not sandbox_installed():  # `autobiz dev status` still reports the rest
            return {}
        from sandbox.control_auth import token_file

        return {"control_token": str(token_file(self.settings))}

    def ports(self) -> list[PortSpec]:
        return [PortSpec(self.host, self.port, "provider sandbox", "AUTOBIZ_SANDBOX__PORT")]
