"""``GET /reports/closeout/{tenant}/{day}.csv?expires=&sig=``: a daily closeout report,
for whoever holds the signed link the closeout's email carried (an operator's browser).

The signature (``autobiz.closeout_links``) covers the tenant, the day and the expiry and
is checked in constant time before anything is read; the CSV is then read through that
tenant's RLS scope (``Database.tenant``), so no link can open another tenant's report.
Answers: 200 ``text/csv``; 403 (bad signature or expired: the same body, so a probe
learns nothing); 404 (a good link to a day with no report); 400 (a malformed request);
503 (database unreachable). Never cached.
"""

from __future__ import annotations

import logging
import re
from datetime import date

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from autobiz.closeout_links import PATH_PREFIX, ReportLinks
from autobiz.db.database import Database, validate_tenant_id
from autobiz.errors import DatabaseError, TenantContextError

log = logging.getLogger(__name__)
_SIG = re.compile(r"^[0-9a-f]{64}$")
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


async def fetch_report_csv(db: Database, tenant_id: str, day: date) -> str | None:
    """The stored CSV of one day of one tenant, read under that tenant's RLS scope."""
    async with db.tenant(tenant_id) as s:
        value = await s.fetch_val(
            "SELECT csv FROM closeout_reports WHERE tenant_id = %s AND day = %s",
            (tenant_id, day),
        )
    return None if value is None else str(value)


def _refused(status: int, error: str) -> Response:
    return JSONResponse({"error": error}, status_code=status, headers=NO_STORE)


def report_route(db: Database, links: ReportLinks) -> Route:
    async def report(request: Request) -> Response:
        tenant_id = request.path_params["tenant"]
        raw_day = request.path_params["day"]
        expires_raw = request.query_params.get("expires", "")
        signature = request.query_params.get("sig", "")
        try:
            validate_tenant_id(tenant_id)
            day = date.fromisoformat(raw_day)
            expires = int(expires_raw)
        except (TenantContextError, ValueError):
            return _refused(400, "malformed report link")
        if not _SIG.fullmatch(signature):
            return _refused(403, "invalid or expired report link")
        why = links.check(tenant_id, day, expires, signature)
        if why is not None:
            log.info("closeout report link refused (%s) for %s %s", why, tenant_id, day)
            return _refused(403, "invalid or expired report link")
        try:
            csv_text = await fetch_report_csv(db, tenant_id, day)
        except DatabaseError:
            return _refused(503, "database unreachable")
        if csv_text is None:
            return _refused(404, "no report for that day")
        filename = f"closeout-{tenant_id}-{day.isoformat()}.csv"
        return Response(
            csv_text,
            media_type="text/csv; charset=utf-8",
            headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{filename}"'},
        )

    return Route(f"{PATH_PREFIX}/{{tenant}}/{{day}}.csv", report, methods=["GET"])
