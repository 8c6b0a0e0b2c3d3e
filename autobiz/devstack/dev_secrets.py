"""The local stack's tenant credentials: one sandbox account per tenant.

``autobiz dev up`` gives every tenant in the config directory provider credentials of
its own (test-mode values, derived from a random secret kept under ``AUTOBIZ_HOME``) in
one secrets file, mode 0600. The same file is the sandbox's account list
(``AUTOBIZ_SANDBOX__ACCOUNTS_FILE``) and the worker's and ingress's credential source
(``AUTOBIZ_SECRETS_FILE``), so each tenant's worker calls and webhooks use that tenant's
keys only. A file named by ``AUTOBIZ_SECRETS_FILE`` is used as it is, never written.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

import yaml

from autobiz.devstack.sandbox_package import sandbox_required
from autobiz.settings import Settings


def dev_secrets_path(settings: Settings) -> Path:
    if settings.secrets_file is not None:
        return settings.secrets_file.expanduser().resolve()
    return settings.home_dir / "secrets" / "tenants.yaml"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)


def ensure_dev_secrets(settings: Settings, tenants: Iterable[str]) -> Path:
    """Add generated credentials for each tenant the file lacks; keep existing ones."""
    path = dev_secrets_path(settings)
    if settings.secrets_file is not None:
        return path
    with sandbox_required("the local stack"):
        from sandbox.accounts import credentials_of, generated_account

    seed_file = path.parent / "seed"
    if not seed_file.exists():
        _write_private(seed_file, secrets.token_hex(32))
    seed = seed_file.read_text().strip()
    current = yaml.safe_load(path.read_text()) if path.exists() else None
    data: dict[str, dict[str, str]] = current if isinstance(current, dict) else {}
    missing = [t for t in sorted(set(tenants)) if t not in data]
    for tenant in missing:
        data[tenant] = credentials_of(generated_account(tenant, secret=seed))
    # A credential added since the file was written (the Inbound Parse one) is filled in.
    grown = False
    for tenant in sorted(set(tenants) - set(missing)):
        for name, value in credentials_of(generated_account(tenant, secret=seed)).items():
            if name not in data[tenant]:
                data[tenant][name], grown = value, True
    if missing or grown or not path.exists():
        _write_private(path, yaml.safe_dump(data, sort_keys=True))
    return path


def dev_secrets_tenants(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text()) if path.exists() else None
    return sorted(data) if isinstance(data, dict) else []
