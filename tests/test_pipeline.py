"""The CI pipeline's pytest plugin (tests/support/pipeline.py) in a pytest of its own:
stages select each test once, a quarantined failure is reported and does not fail the
build, an expired or stale entry does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.pipeline import QuarantineError, load_quarantine

pytestmark = pytest.mark.unit

TESTS = """
import pytest

@pytest.mark.hygiene
def test_layout():
    pass

@pytest.mark.unit
def test_pure():
    pass

def test_unmarked():
    pass

@pytest.mark.integration
class TestFlows:
    @pytest.mark.e2e
    def test_through_the_cli(self):
        pass

    def test_flaky(self):
        assert False, "lost the race"

@pytest.mark.golden
def test_gate():
    pass
"""


def _run(pytester: pytest.Pytester, *args: str, quarantine: str = "[]") -> pytest.RunResult:
    pytester.makepyfile(test_sample=TESTS)
    pytester.makefile(".yaml", quarantine=quarantine)
    return pytester.runpytest(
        "-p", "tests.support.pipeline", "--quarantine-file", "quarantine.yaml", *args
    )


@pytest.mark.parametrize(
    ("stage", "tests"),
    [
        ("hygiene", {"test_layout"}),
        ("unit", {"test_pure"}),
        ("integration", {"test_unmarked", "test_flaky"}),  # unmarked tests go here
        ("e2e", {"test_through_the_cli"}),  # the nearer, later marker wins
        ("golden", {"test_gate"}),
    ],
)
def test_each_test_is_in_exactly_one_stage(
    pytester: pytest.Pytester, stage: str, tests: set[str]
) -> None:
    result = _run(pytester, "--stage", stage, "--collect-only", "-q")
    collected = {line.rsplit("::", 1)[-1] for line in result.outlines if "::" in line}
    assert collected == tests


def test_a_quarantined_failure_is_reported_and_does_not_fail_the_build(
    pytester: pytest.Pytester,
) -> None:
    entry = (
        "- test: test_sample.py::TestFlows::test_flaky\n"
        "  reason: races the relay\n"
        "  expires: 2026-12-31\n"
    )
    args = ["--stage", "integration", "--today", "2026-12-02", "--flake-report", "flakes.json"]
    result = _run(pytester, *args, quarantine=entry)
    assert result.ret == 0
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*failed (quarantined)*test_flaky*races the relay*"])
    report = json.loads((pytester.path / "flakes.json").read_text())
    assert report["quarantined"][0]["outcome"] == "failed (quarantined)"
    assert "lost the race" in report["quarantined"][0]["failure"]

    # Without the entry the same failure fails the stage.
    assert _run(pytester, "--stage", "integration").ret == pytest.ExitCode.TESTS_FAILED


def test_an_expired_entry_fails_the_build(pytester: pytest.Pytester) -> None:
    entry = "- test: test_sample.py::TestFlows::test_flaky\n  reason: r\n  expires: 2026-12-01\n"
    result = _run(pytester, "--stage", "integration", "--today", "2026-12-02", quarantine=entry)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*QUARANTINE EXPIRED 2026-12-01*test_flaky*"])
    # Even when every test it selects passes.
    assert _run(pytester, "--stage", "unit", "--today", "2026-12-02", quarantine=entry).ret == 1


def test_an_entry_for_a_test_that_is_gone_fails_the_build(pytester: pytest.Pytester) -> None:
    entry = "- test: test_sample.py::test_renamed\n  reason: r\n  expires: 2027-01-31\n"
    result = _run(pytester, "--stage", "unit", quarantine=entry)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*QUARANTINE STALE*test_renamed*"])


def test_a_malformed_quarantine_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "q.yaml"
    bad.write_text("- test: a::b\n  reason: ''\n  expires: 2026-12-31\n")
    with pytest.raises(QuarantineError, match="reason may not be empty"):
        load_quarantine(bad)
    bad.write_text("- test: a::b\n  reason: x\n  expires: soon\n")
    with pytest.raises(QuarantineError, match="must be a date"):
        load_quarantine(bad)
