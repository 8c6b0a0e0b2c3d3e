"""The test pipeline: hygiene → unit → integration → e2e → golden, one pytest run each.

    python .ci/stages.py [--only STAGE ...] [--no-coverage] [--artifacts DIR]

Each stage is ``pytest --stage NAME`` (tests/support/pipeline.py says which test is in
which stage and how the flake quarantine works), timed, with its artifacts under one
folder (default ``.ci/artifacts/``): ``<stage>.junit.xml``, ``<stage>.log``,
``<stage>.flakes.json``, coverage (``coverage.xml`` and ``htmlcov/``, over all stages)
and ``summary.json``. Every stage runs even after one fails, so one CI run reports all of
them; the exit status is non-zero if any failed. The last line is the totals,
``N passed, N failed, N skipped``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("hygiene", "unit", "integration", "e2e", "golden")
COVERED = ("autobiz", "kernel", "workflows", "activities", "workers", "starters", "ingress")


@dataclass(frozen=True)
class StageResult:
    stage: str
    exit: int
    seconds: float
    tests: int
    failed: int
    skipped: int

    @property
    def ok(self) -> bool:
        # pytest exits 5 when a stage selects nothing: not a failure of the pipeline.
        return self.exit in (0, 5)


def _counts(junit: Path) -> dict[str, int]:
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if not junit.exists():
        return counts
    root = ET.parse(junit).getroot()  # noqa: S314 - our own pytest wrote it
    for suite in root.iter("testsuite"):
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    return counts


def run_stage(stage: str, artifacts: Path, coverage: bool) -> StageResult:
    junit = artifacts / f"{stage}.junit.xml"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--stage",
        stage,
        f"--junitxml={junit}",
        f"--flake-report={artifacts / f'{stage}.flakes.json'}",
    ]
    if coverage:
        cmd += [f"--cov={pkg}" for pkg in COVERED] + ["--cov-append", "--cov-report="]
    print(f"\n=== stage {stage}: {' '.join(cmd[3:5])}", flush=True)
    started = time.monotonic()
    env = {**os.environ, "COVERAGE_FILE": str(artifacts / ".coverage")}
    with open(artifacts / f"{stage}.log", "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
        code = proc.wait()
    seconds = round(time.monotonic() - started, 1)
    c = _counts(junit)
    result = StageResult(
        stage, code, seconds, c["tests"], c["failures"] + c["errors"], c["skipped"]
    )
    print(f"=== stage {stage}: {'ok' if result.ok else f'FAILED (exit {code})'} in {seconds} s")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=STAGES, help="run these stages only")
    parser.add_argument("--no-coverage", action="store_true", help="skip coverage")
    parser.add_argument("--artifacts", type=Path, default=ROOT / ".ci" / "artifacts")
    args = parser.parse_args(argv)
    artifacts: Path = args.artifacts.resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / ".coverage").unlink(missing_ok=True)
    coverage = not args.no_coverage
    results = [run_stage(s, artifacts, coverage) for s in (args.only or STAGES)]
    if coverage and (artifacts / ".coverage").exists():
        env = {**os.environ, "COVERAGE_FILE": str(artifacts / ".coverage")}
        reports = [["xml", "-o", str(artifacts / "coverage.xml")]]
        reports.append(["html", "-d", str(artifacts / "htmlcov")])
        for report in reports:
            subprocess.run([sys.executable, "-m", "coverage", *report, "-q"], env=env, cwd=ROOT)
        total = subprocess.run(
            [sys.executable, "-m", "coverage", "report", "--format=total"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        print(f"coverage: {total.stdout.strip()} % of {', '.join(COVERED)}")
    summary = [{**asdict(r), "ok": r.ok} for r in results]
    (artifacts / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\n stage        seconds  tests  failed  skipped")
    for r in results:
        mark = "" if r.ok else "  <- FAILED"
        print(f" {r.stage:<12} {r.seconds:>7}  {r.tests:>5}  {r.failed:>6}  {r.skipped:>7}{mark}")
    failed = sum(r.failed for r in results)
    skipped = sum(r.skipped for r in results)
    passed = sum(r.tests for r in results) - failed - skipped
    broken = [r.stage for r in results if not r.ok]
    if broken:
        print(f"stages failed: {', '.join(broken)}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
