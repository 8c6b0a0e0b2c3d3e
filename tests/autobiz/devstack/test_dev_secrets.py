"""The local stack's tenant credentials file: one set of provider accounts per tenant."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from autobiz.devstack.dev_secrets import dev_secrets_path, ensure_dev_secrets
from autobiz.settings import Settings
from sandbox.accounts import SandboxAccount, accounts_from_file

pytestmark = pytest.mark.unit


def test_each_tenant_gets_its_own_credentials_kept_across_runs(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    path = ensure_dev_secrets(settings, ["demo-shop", "corner-shop"])
    assert path == dev_secrets_path(settings) == tmp_path / "home" / "secrets" / "tenants.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = yaml.safe_load(path.read_text())
    assert sorted(data) == ["corner-shop", "demo-shop"]
    a, b = data["demo-shop"], data["corner-shop"]
    assert a["stripe_api_key"].startswith("sk_test_") and a["sendgrid_api_key"].startswith("SG.")
    assert a["shopify_shop_domain"] == "demo-shop.myshopify.com"
    assert not {k for k in a if a[k] == b[k] and k != "printful_store_id"}  # nothing shared
    # A later run keeps what exists and adds only the new tenant.
    ensure_dev_secrets(settings, ["demo-shop", "corner-shop", "third-shop"])
    again = yaml.safe_load(path.read_text())
    assert again["demo-shop"] == a and again["corner-shop"] == b and "third-shop" in again
    # The same file is the sandbox's list of accounts.
    accounts = {acc.tenant: acc for acc in accounts_from_file(path)}
    assert isinstance(accounts["demo-shop"], SandboxAccount)
    assert accounts["demo-shop"].stripe_api_key == a["stripe_api_key"]


def test_a_named_secrets_file_is_used_as_it_is(tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("demo-shop: {stripe_api_key: sk_test_mine}\n")
    settings = Settings(home=tmp_path / "home", secrets_file=mine)
    assert ensure_dev_secrets(settings, ["demo-shop", "new-shop"]) == mine.resolve()
    assert mine.read_text() == "demo-shop: {stripe_api_key: sk_test_mine}\n"
