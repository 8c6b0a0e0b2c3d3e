"""``docs/traceability.md`` lists every seed test id once, with tests that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from autobiz.gate import traceability as tr

pytestmark = pytest.mark.hygiene


def test_every_seed_id_is_listed_once_with_tests_that_exist() -> None:
    rows = tr.load()
    assert tr.problems(rows) == []
    assert {r.id for r in rows} == set(tr.SEED_IDS)


def test_most_ids_are_covered_and_the_rest_say_why() -> None:
    rows = tr.load()
    uncovered = [r for r in rows if r.status == tr.NOT_COVERED]
    assert len(uncovered) <= 3, [r.id for r in uncovered]
    assert all("defines no" in r.why for r in uncovered)


def test_the_check_sees_a_missing_id_a_stale_test_and_a_bare_refusal(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "class TestA:\n    def test_in_class(self):\n        pass\n\n"
        "async def test_async():\n    pass\n"
    )
    assert tr.resolves("tests/test_x.py::TestA::test_in_class", tmp_path)
    assert tr.resolves("tests/test_x.py::test_async[param-1]", tmp_path)
    assert not tr.resolves("tests/test_x.py::test_in_class", tmp_path)  # it is in a class
    assert not tr.resolves("tests/test_gone.py::test_async", tmp_path)
    text = (
        "| P1-T01 | x | covered | `tests/test_x.py::test_async` |\n"
        "| P1-T02 | x | covered | `tests/test_x.py::test_renamed` |\n"
        "| P1-T03 | x | not covered | no |\n"
        "| P1-T03 | x | covered | `tests/test_x.py::TestA::test_in_class` |\n"
        "| P1-T99 | x | covered | `tests/test_x.py::test_async` |\n"
    )
    found = tr.problems(tr.parse(text), tmp_path)
    assert "P1-T02: tests/test_x.py::test_renamed does not exist" in found
    assert "P1-T03: not covered needs a reason (and no tests)" in found
    assert "P1-T03: listed 2 times" in found
    assert "P1-T99: not a seed id" in found
    assert "P1-T04: missing" in found
    assert not any(p.startswith("P1-T01:") for p in found)


def test_the_committed_exit_report_is_dated_complete_and_its_links_resolve() -> None:
    report = tr.ROOT / "docs" / "exit-report.md"
    text = report.read_text()
    assert re.search(r"^Produced \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", text, re.MULTILINE)
    for ident in [f"EXIT-{n:02d}" for n in range(1, 15)] + [f"ENTRY-{n:02d}" for n in range(1, 5)]:
        row = re.search(
            rf"^\| {ident} \| .+ \| (met|partly met|not met) \| .* \| (.+) \|$", text, re.MULTILINE
        )
        assert row, f"{ident} is not in the report"
        assert row.group(1) == "met" or len(row.group(2)) > 20, f"{ident}: not met needs a why"
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert links
    assert [link for link in links if not (report.parent / link).exists()] == []
