"""CI stages and the flake quarantine, as a pytest plugin (loaded by ``tests/conftest.py``).

**Stages.** ``hygiene → unit → integration → e2e → golden``. Every test belongs to
exactly one: the last of them whose marker it carries (a module marked ``integration``
with one test marked ``e2e`` puts that test in ``e2e``); a test with none of them is in
``integration`` (it may start servers: the safe place). ``pytest --stage NAME``
runs one stage; ``.ci/stages.py`` runs them in order.

**Quarantine.** ``tests/quarantine.yaml`` lists tests known to be flaky, each with a
reason and an expiry date. A quarantined test still runs and its outcome is reported
(``--flake-report FILE``: JSON), but its failure cannot fail the build (it counts as
xfailed). An entry past its expiry, or one naming no collected test of the selection's
files, fails the session: a quarantine is a loan, not a place to forget a test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

STAGES = ("hygiene", "unit", "integration", "e2e", "golden")
DEFAULT_STAGE = "integration"
QUARANTINE_FILE = Path(__file__).resolve().parents[1] / "quarantine.yaml"


@dataclass(frozen=True)
class Quarantined:
    test: str  # a pytest node id, relative to the repository root
    reason: str
    expires: date
    issue: str | None = None

    def expired(self, today: date) -> bool:
        return today > self.expires


class QuarantineError(ValueError):
    """The quarantine file is malformed."""


def load_quarantine(path: Path) -> list[Quarantined]:
    if not path.exists():
        return []
    raw = yaml.safe_load(path.read_text()) or []
    if not isinstance(raw, list):
        raise QuarantineError(f"{path}: expected a list of entries")
    entries = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not {"test", "reason", "expires"} <= item.keys():
            raise QuarantineError(f"{path} entry {i}: needs test, reason and expires")
        expires = item["expires"]
        if not isinstance(expires, date):
            raise QuarantineError(f"{path} entry {i}: expires must be a date (YYYY-MM-DD)")
        if not str(item["reason"]).strip():
            raise QuarantineError(f"{path} entry {i}: the reason may not be empty")
        entries.append(
            Quarantined(str(item["test"]), str(item["reason"]), expires, item.get("issue"))
        )
    return entries


def stage_of(item: pytest.Item) -> str:
    for name in reversed(STAGES):
        if item.get_closest_marker(name) is not None:
            return name
    return DEFAULT_STAGE


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("autobiz pipeline")
    group.addoption("--stage", choices=STAGES, help="run only the tests of one CI stage")
    group.addoption("--flake-report", metavar="FILE", help="write the quarantine's outcomes")
    group.addoption(
        "--quarantine-file", metavar="FILE", default=str(QUARANTINE_FILE), help="the quarantine"
    )
    group.addoption(
        "--today", metavar="YYYY-MM-DD", help="the day expiry is judged on (default: today)"
    )


class Pipeline:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        given = config.getoption("--today")
        self.today = date.fromisoformat(given) if given else date.today()
        self.entries = load_quarantine(Path(config.getoption("--quarantine-file")))
        self.expired = [e for e in self.entries if e.expired(self.today)]
        self.unknown: list[Quarantined] = []
        self.outcomes: dict[str, dict[str, Any]] = {}

    # -- collection --------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        by_id = {e.test: e for e in self.entries}
        collected = {item.nodeid for item in items}
        collected_files = {item.nodeid.split("::", 1)[0] for item in items}
        # An entry for a file this run collected but a test it did not find is stale.
        self.unknown = [
            e
            for e in self.entries
            if e.test.split("::", 1)[0] in collected_files and e.test not in collected
        ]
        stage = config.getoption("--stage")
        kept, deselected = [], []
        for item in items:
            if stage is not None and stage_of(item) != stage:
                deselected.append(item)
                continue
            kept.append(item)
            entry = by_id.get(item.nodeid)
            if entry is not None and not entry.expired(self.today):
                item.add_marker(
                    pytest.mark.xfail(reason=f"quarantined: {entry.reason}", strict=False)
                )
                self.outcomes[item.nodeid] = {
                    "test": item.nodeid,
                    "reason": entry.reason,
                    "expires": entry.expires.isoformat(),
                    "issue": entry.issue,
                    "outcome": "not run",
                }
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = kept

    # -- outcomes ----------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        seen = self.outcomes.get(report.nodeid)
        if seen is None:
            return
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            if hasattr(report, "wasxfail"):
                seen["outcome"] = "failed (quarantined)" if report.skipped else "passed"
            else:
                seen["outcome"] = report.outcome
            if report.longrepr is not None and report.skipped:
                seen["failure"] = str(report.longrepr)[-2000:]

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        path = self.config.getoption("--flake-report")
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(
                json.dumps(
                    {
                        "stage": self.config.getoption("--stage"),
                        "today": self.today.isoformat(),
                        "quarantined": sorted(self.outcomes.values(), key=lambda o: o["test"]),
                        "expired": [_entry(e) for e in self.expired],
                        "unknown": [_entry(e) for e in self.unknown],
                    },
                    indent=2,
                )
                + "\n"
            )
        if (self.expired or self.unknown) and session.exitstatus in (0, 5):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tr = terminalreporter
        if self.outcomes:
            tr.section("quarantine")
            for o in sorted(self.outcomes.values(), key=lambda o: o["test"]):
                tr.line(f"{o['outcome']:>22}  {o['test']}  (until {o['expires']}: {o['reason']})")
        for e in self.expired:
            tr.line(
                f"QUARANTINE EXPIRED {e.expires}: {e.test} ({e.reason}) — fix it or renew it",
                red=True,
            )
        for e in self.unknown:
            tr.line(f"QUARANTINE STALE: {e.test} names no test — remove the entry", red=True)


def _entry(e: Quarantined) -> dict[str, Any]:
    return {"test": e.test, "reason": e.reason, "expires": e.expires.isoformat()}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "golden: the golden-suite stage (autobiz gate)")
    config.pluginmanager.register(Pipeline(config), "autobiz-pipeline")
