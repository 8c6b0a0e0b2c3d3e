"""The test pipeline: hygiene → unit → integration → e2e → golden, one pytest run each.

    python .ci/stages.py [--only STAGE ...] [--lanes 1|2] [--no-coverage] [--artifacts DIR]

Each stage is ``pytest --stage NAME`` (tests/support/pipeline.py says which test is in
which stage and how the flake quarantine works), timed, with its artifacts under one
folder (default ``.ci/artifacts/``): ``<stage>.junit.xml``, ``<stage>.log``,
``<stage>.flakes.json``, coverage (``coverage.xml`` and ``htmlcov/``, over all stages)
and ``summary.json``. Every stage runs even after one fails, so one CI run reports all of
them; the exit status is non-zero if any failed. The last line is the totals,
``N passed, N failed, N skipped``.

**Lanes.** The stages wait on servers far more than they compute (the load average of
one stage on 2 cores is about 1), so by default two lanes run side by side:
hygiene → unit → integration, and e2e → golden (the two halves take about as long).
Each stage is still its own pytest session with its own database, dev server and
ports, so the lanes share nothing but the machine. A stage's output is printed whole
when it ends (its log is written as it runs); ``--lanes 1`` runs them one after another
in the order above.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("hygiene", "unit", "integration", "e2e", "golden")
LANES = (("hygiene", "unit", "integration"), ("e2e", "golden"))
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


def plan(only: list[str] | None, lanes: int) -> list[list[str]]:
    """The stages to run, as lanes (each run in order; lanes side by side)."""
    chosen = [s for s in STAGES if not only or s in only]
    if lanes == 1:
        return [chosen] if chosen else []
    return [picked for lane in LANES if (picked := [s for s in lane if s in chosen])]


def coverage_file(artifacts: Path, stage: str) -> Path:
    """Each stage's own coverage data (lanes run at once); combined at the end."""
    return artifacts / "coverage" / stage / ".coverage"


_print_lock = threading.Lock()


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
        cmd += [f"--cov={pkg}" for pkg in COVERED] + ["--cov-report="]
    data = coverage_file(artifacts, stage)
    data.parent.mkdir(parents=True, exist_ok=True)
    data.unlink(missing_ok=True)
    with _print_lock:
        print(f"=== stage {stage}: {' '.join(cmd[3:5])} (started)", flush=True)
    started = time.monotonic()
    env = {**os.environ, "COVERAGE_FILE": str(data)}
    log_path = artifacts / f"{stage}.log"
    with open(log_path, "w") as log:
        code = subprocess.run(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        ).returncode
    seconds = round(time.monotonic() - started, 1)
    c = _counts(junit)
    result = StageResult(
        stage, code, seconds, c["tests"], c["failures"] + c["errors"], c["skipped"]
    )
    with _print_lock:
        print(f"\n=== stage {stage}: {' '.join(cmd[3:5])}")
        sys.stdout.write(log_path.read_text(errors="replace"))
        print(f"=== stage {stage}: {'ok' if result.ok else f'FAILED (exit {code})'} in {seconds} s")
        sys.stdout.flush()
    return result


def run_lanes(lanes: list[list[str]], artifacts: Path, coverage: bool) -> list[StageResult]:
    """Run each lane's stages in order, the lanes side by side; results in STAGES order."""
    done: dict[str, StageResult] = {}

    def lane(stages: list[str]) -> None:
        for stage in stages:
            try:
                done[stage] = run_stage(stage, artifacts, coverage)
            except Exception as exc:  # the runner itself broke: the stage counts as failed
                with _print_lock:
                    print(f"=== stage {stage}: could not run: {exc!r}", flush=True)
                done[stage] = StageResult(stage, 1, 0.0, 0, 1, 0)

    threads = [threading.Thread(target=lane, args=(stages,)) for stages in lanes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [done[s] for s in STAGES if s in done]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=STAGES, help="run these stages only")
    parser.add_argument(
        "--lanes", type=int, choices=(1, 2), default=2, help="stages side by side (default 2)"
    )
    parser.add_argument("--no-coverage", action="store_true", help="skip coverage")
    parser.add_argument("--artifacts", type=Path, default=ROOT / ".ci" / "artifacts")
    args = parser.parse_args(argv)
    artifacts: Path = args.artifacts.resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / ".coverage").unlink(missing_ok=True)
    coverage = not args.no_coverage
    started = time.monotonic()
    results = run_lanes(plan(args.only, args.lanes), artifacts, coverage)
    wall = round(time.monotonic() - started, 1)
    parts = [str(f) for r in results if (f := coverage_file(artifacts, r.stage)).exists()]
    if coverage and parts:
        env = {**os.environ, "COVERAGE_FILE": str(artifacts / ".coverage")}
        subprocess.run(
            [sys.executable, "-m", "coverage", "combine", "-q", *parts], env=env, cwd=ROOT
        )
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
    print(f"\n{len(results)} stages in {args.lanes} lane(s): {wall} s wall clock")
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
