"""docs/settings.md is generated from autobiz/settings.py and must say what it says: a
setting added, renamed or re-described without regenerating the page fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from autobiz.settings_reference import render, specs

pytestmark = pytest.mark.hygiene

PAGE = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
REGENERATE = "python -m autobiz.settings_reference > docs/settings.md"


def test_the_page_is_what_the_generator_writes() -> None:
    assert PAGE.read_text(encoding="utf-8") == render(), f"stale: run `{REGENERATE}`"


def test_every_setting_is_on_the_page_with_a_description() -> None:
    page = PAGE.read_text(encoding="utf-8")
    undocumented = [spec.env for spec in specs() if not spec.description]
    assert undocumented == [], "add description= to these fields in autobiz/settings.py"
    for spec in specs():
        assert f"| `{spec.env}`" in page


def test_the_page_holds_no_secret_default() -> None:
    page = PAGE.read_text(encoding="utf-8")
    for secret in ("sk_test_autobiz_sandbox", "whsec_autobiz_sandbox", "shpat_", "SG.autobiz"):
        assert secret not in page
    assert "9gMCCvz9" not in page  # the dev codec key


def test_the_page_does_not_depend_on_the_machine() -> None:
    page = render()
    assert str(Path.home()) not in page
    assert str(PAGE.parents[1]) not in page
    assert "Usage Documentation" not in page  # pydantic's BaseModel docstring, per version
