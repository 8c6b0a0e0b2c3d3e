"""`autobiz settings show`: every setting with its value and source, readable in a pipe,
and no secret — not even its first characters — on stdout or stderr."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from autobiz.settings_reference import render, specs

pytestmark = pytest.mark.e2e

STRIPE_KEY = "sk_live_51HqLyjWDarjtT1zdp7dcXYZsecretStripeKey"
TEMPORAL_KEY = "tcak_eyJhbGciOiJFUzI1NiIsImtpZCI6IlRlbXBvcmFsQ2xvdWQifQ"
LINE = re.compile(r"^(AUTOBIZ_[A-Z0-9_]+)=(.*)  # (\S.*)$")


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if not k.upper().startswith(("AUTOBIZ_", "TEMPORAL_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "autobiz.cli.main", "settings", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def assert_no_prefix_of(secret: str, text: str) -> None:
    # Six characters is already past "sk_liv"/"tcak_e": any longer piece is a leak.
    for length in range(6, len(secret) + 1):
        assert secret[:length] not in text, f"{length} characters of a secret leaked"


def lines(out: str) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        match = LINE.match(line)
        assert match, f"not NAME=value  # source: {line!r}"
        found[match[1]] = (match[2], match[3])
    return found


SECRETS = {"AUTOBIZ_STRIPE__API_KEY": STRIPE_KEY, "AUTOBIZ_TEMPORAL__API_KEY": TEMPORAL_KEY}


def test_show_lists_every_setting_with_its_source_and_masks_secrets() -> None:
    result = run(
        "show",
        **SECRETS,
        AUTOBIZ_SANDBOX__PORT="9876",
        AUTOBIZ_TEMPORAL__ADDRESS="ns.acct.tmprl.cloud:7233",
        AUTOBIZ_LLM='{"primary_model": "gpt-x"}',
    )
    for secret in SECRETS.values():
        assert_no_prefix_of(secret, result.stdout + result.stderr)
    shown = lines(result.stdout)
    assert list(shown) == [spec.env for spec in specs()]  # every setting, once, in order
    assert shown["AUTOBIZ_STRIPE__API_KEY"] == ("********", "environment")
    assert shown["AUTOBIZ_TEMPORAL__API_KEY"] == ("********", "environment")
    assert shown["AUTOBIZ_SANDBOX__PORT"] == ("9876", "environment")
    assert shown["AUTOBIZ_TEMPORAL__ADDRESS"] == ("ns.acct.tmprl.cloud:7233", "environment")
    assert shown["AUTOBIZ_LLM__PRIMARY_MODEL"] == ("gpt-x", "environment (AUTOBIZ_LLM)")
    # Follows the sandbox's port: derived, not the literal default.
    assert shown["AUTOBIZ_STRIPE__API_BASE"] == ("http://127.0.0.1:9876/stripe", "derived")
    assert shown["AUTOBIZ_INGRESS__DEFAULT_TENANT"] == ("demo-shop", "default")
    # A sandbox default secret is masked too; an unset one is empty.
    assert shown["AUTOBIZ_STRIPE__WEBHOOK_SECRET"] == ("********", "default")
    assert shown["AUTOBIZ_SANDBOX__CONTROL_TOKEN"] == ("", "default")
    # A name that says key is masked whatever its type; a key ring shows ids, not keys.
    assert shown["AUTOBIZ_KERNEL__CODEC_ACTIVE_KEY"][0] == "********"
    assert json.loads(shown["AUTOBIZ_KERNEL__CODEC_KEYS"][0]) == {"dev-1": "********"}
    assert "9gMCCvz9" not in result.stdout


def test_show_json_masks_the_same_way() -> None:
    result = run(
        "show", "--json", **SECRETS, AUTOBIZ_KERNEL__CODEC_SERVER_TOKEN="tok-abcdef-123456"
    )
    for secret in (*SECRETS.values(), "tok-abcdef-123456"):
        assert_no_prefix_of(secret, result.stdout + result.stderr)
    rows: dict[str, dict[str, Any]] = {
        row["name"]: row for row in json.loads(result.stdout)["settings"]
    }
    assert len(rows) == len(specs())
    assert rows["AUTOBIZ_KERNEL__CODEC_SERVER_TOKEN"] == {
        "name": "AUTOBIZ_KERNEL__CODEC_SERVER_TOKEN",
        "value": "********",
        "source": "environment",
        "secret": True,
    }
    assert rows["AUTOBIZ_LLM__API_KEY"]["value"] is None
    assert rows["AUTOBIZ_TEMPORAL__TLS_CLIENT_KEY_PATH"]["secret"] is False  # a path


def test_reference_prints_the_page() -> None:
    assert run("reference").stdout == render()
