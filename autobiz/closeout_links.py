"""Signed, expiring links to a tenant's daily closeout report (the CSV the DailyCloseout
stored in ``closeout_reports``), as the closeout's email carries them.

A link is ``{base}/reports/closeout/{tenant}/{day}.csv?expires={epoch}&sig={hex}``, the
signature an HMAC-SHA256 over ``closeout-report|{tenant}|{day}|{expires}``. The tenant
and the day are inside the signed statement, so a link opens exactly one tenant's one
day: changing either (or the expiry) breaks the signature, and the ingress reads the
report through that tenant's RLS scope only. Checked in constant time
(``hmac.compare_digest``), refused once expired.

The key is derived from the kernel's payload codec keys (HMAC-SHA256 of a fixed label
under each key: HKDF-expand with one block), so the worker that signs and the ingress
that checks share no new secret, the ``dev-`` key production refuses covers links too,
and rotating the codec key rotates links (an old key still listed still verifies, as
for payloads). No key leaves this module; the link carries only the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from autobiz.settings import Settings

_LABEL = b"autobiz/closeout-report-link/v1"
PATH_PREFIX = "/reports/closeout"


def _derive(raw_key: str) -> bytes:
    return hmac.new(base64.b64decode(raw_key), _LABEL, hashlib.sha256).digest()


def _statement(tenant_id: str, day: date, expires: int) -> bytes:
    return f"closeout-report|{tenant_id}|{day.isoformat()}|{expires}".encode()


@dataclass(frozen=True)
class ReportLinks:
    """Signs (with the active key) and checks (with every listed key) report links."""

    base_url: str
    active: bytes
    keys: tuple[bytes, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> ReportLinks:
        k = settings.kernel
        keys = {kid: _derive(v.get_secret_value()) for kid, v in k.codec_keys.items()}
        ingress = settings.ingress
        return cls(
            base_url=(ingress.public_url or f"http://{ingress.host}:{ingress.port}").rstrip("/"),
            active=keys[k.codec_active_key],
            keys=tuple(keys.values()),
        )

    def sign(self, tenant_id: str, day: date, expires: int) -> str:
        return hmac.new(
            self.active, _statement(tenant_id, day, expires), hashlib.sha256
        ).hexdigest()

    def url(
        self, tenant_id: str, day: date, ttl: timedelta, *, now: datetime | None = None
    ) -> tuple[str, datetime]:
        """The link and when it stops working."""
        expires_at = (now or datetime.now(UTC)) + ttl
        expires = int(expires_at.timestamp())
        query = urlencode({"expires": expires, "sig": self.sign(tenant_id, day, expires)})
        return (
            f"{self.base_url}{PATH_PREFIX}/{tenant_id}/{day.isoformat()}.csv?{query}",
            datetime.fromtimestamp(expires, UTC),
        )

    def check(
        self,
        tenant_id: str,
        day: date,
        expires: int,
        signature: str,
        *,
        now: datetime | None = None,
    ) -> str | None:
        """None when the link is good; else why not (``expired`` / ``bad_signature``).
        Every key is compared (no early exit on a match position)."""
        statement = _statement(tenant_id, day, expires)
        given = signature.encode()
        good = False
        for key in self.keys:
            wanted = hmac.new(key, statement, hashlib.sha256).hexdigest().encode()
            good |= hmac.compare_digest(wanted, given)
        if not good:
            return "bad_signature"
        if (now or datetime.now(UTC)).timestamp() >= expires:
            return "expired"
        return None
