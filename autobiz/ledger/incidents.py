"""Security incidents: a refused attempt to touch another tenant's or another order's
object (DESIGN §5). Each one is a row in the acting tenant's ``audit_log``
(``action = 'security.<code>'``, outcome ``refused``) and a count in
``autobiz_security_incidents_total`` (worker; the ingress counts its own refusals as
``autobiz_ingress_security_incidents_total``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from autobiz.db.database import Database
from kernel.metrics import record_security_incident
from kernel.redaction import redact_value

log = logging.getLogger(__name__)


async def record_incident(
    db: Database, tenant_id: str, *, code: str, actor: str, detail: dict[str, Any]
) -> None:
    """Write the incident; a failure to write is logged, never hides the refusal."""
    safe = redact_value(detail)
    log.warning("security incident %s for tenant %s: %s", code, tenant_id, safe)
    try:
        async with db.tenant(tenant_id) as session:
            await session.execute(
                "INSERT INTO audit_log (tenant_id, actor, action, outcome, detail) "
                "VALUES (%s, %s, %s, 'refused', %s)",
                (tenant_id, actor, f"security.{code}", json.dumps(safe, default=str)),
            )
    except Exception:  # the refusal stands whatever happens to its record
        log.exception("security incident %s for tenant %s not recorded", code, tenant_id)
    record_security_incident(tenant_id, code)  # worker: a no-op outside an activity
