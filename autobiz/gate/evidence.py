"""The gate's evidence: verdicts per gate and per scenario from the trials, written as
JSON (for machines and the exit report) and Markdown (for a reviewer), with every run's
workflow ids and Web UI links."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autobiz.gate.trials import Round, Trial
from autobiz.gate.wilson import (
    Z_95,
    GateResult,
    GateRule,
    evaluate_gate,
    min_trials_for,
    wilson_lower_bound,
)

LATEST = "latest.json"


@dataclass(frozen=True)
class Profile:
    """``deploy`` is the gate a deploy waits for; ``ci`` is a one-round smoke run of the
    same suite (every run must pass), recorded as not a deploy gate."""

    name: str
    rules: tuple[GateRule, GateRule]
    deploy_gate: bool

    def default_runs(self, p1_scenarios: int) -> int:
        """The fewest rounds whose P1 runs can reach the P1 threshold (1 without one)."""
        p1 = self.rules[1]
        if p1.min_lcb <= 0 or p1_scenarios == 0:
            return 1
        return math.ceil(min_trials_for(p1.min_lcb) / p1_scenarios)


PROFILES = {
    "deploy": Profile(
        "deploy", (GateRule("P0", require_all=True), GateRule("P1", min_lcb=0.95)), True
    ),
    "ci": Profile(
        "ci", (GateRule("P0", require_all=True), GateRule("P1", require_all=True)), False
    ),
}


def judge(profile: Profile, trials: Sequence[Trial]) -> list[GateResult]:
    """One verdict per gate; a gate none of the selected scenarios belongs to is left out."""
    results = []
    for rule in profile.rules:
        mine = [t for t in trials if t.gate == rule.name]
        if mine:
            results.append(evaluate_gate(rule, sum(t.ok for t in mine), len(mine)))
    return results


def _per_scenario(trials: Sequence[Trial]) -> list[dict[str, Any]]:
    names = list(dict.fromkeys(t.scenario for t in trials))
    out = []
    for name in names:
        mine = [t for t in trials if t.scenario == name]
        passed = sum(t.ok for t in mine)
        out.append(
            {
                "scenario": name,
                "gate": mine[0].gate,
                "passed": passed,
                "trials": len(mine),
                "rate": round(passed / len(mine), 4),
                "lcb": round(wilson_lower_bound(passed, len(mine)), 4),
            }
        )
    return out


def build(
    *,
    run_id: str,
    profile: Profile,
    started: datetime,
    trials: Sequence[Trial],
    rounds: Sequence[Round],
    ui_url: str,
) -> dict[str, Any]:
    gates = judge(profile, trials)
    rules = {r.name: r for r in profile.rules}
    return {
        "gate_run_id": run_id,
        "profile": profile.name,
        "deploy_gate": profile.deploy_gate,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": len(rounds),
        "z": Z_95,
        "ok": bool(gates) and all(g.ok for g in gates),
        "gates": [_gate_record(g, rules[g.name]) for g in gates],
        "scenarios": _per_scenario(trials),
        "rounds": [asdict(r) for r in rounds],
        "trials": [asdict(t) for t in trials],
        "temporal_ui": ui_url,
    }


def _gate_record(result: GateResult, rule: GateRule) -> dict[str, Any]:
    return asdict(result) | {
        "rate": round(result.rate, 4),
        "lcb": round(result.lcb, 4),
        "ok": result.ok,
        "require_all": rule.require_all,
        "min_lcb": rule.min_lcb,
    }


def write(evidence: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """``<run id>.json`` and ``.md`` in ``out_dir``, and ``latest.json`` naming the run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / str(evidence["gate_run_id"])
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(evidence, indent=2, default=str) + "\n")
    md_path.write_text(markdown(evidence))
    (out_dir / LATEST).write_text(json.dumps(evidence, indent=2, default=str) + "\n")
    return json_path, md_path


def markdown(evidence: dict[str, Any]) -> str:
    kind = "deploy gate" if evidence["deploy_gate"] else "smoke run (not a deploy gate)"
    lines = [
        f"# Gate evidence {evidence['gate_run_id']}",
        "",
        f"- Profile: `{evidence['profile']}` ({kind}); {evidence['runs']} rounds",
        f"- From {evidence['started_at']} to {evidence['finished_at']}",
        f"- Verdict: **{'PASS' if evidence['ok'] else 'FAIL'}**",
        f"- Temporal Web UI: {evidence['temporal_ui']}",
        "",
        "## Gates (Wilson lower bound, z = 1.96)",
        "",
        "| Gate | Passed | Runs | Rate | LCB | Verdict | Why |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in evidence["gates"]:
        lines.append(
            f"| {g['name']} | {g['passed']} | {g['trials']} | {g['rate']:.4f} | "
            f"{g['lcb']:.4f} | {g['verdict']} | {g['reason']} |"
        )
    lines += [
        "",
        "## Scenarios",
        "",
        "| Scenario | Gate | Passed | Runs | LCB |",
        "|---|---|---|---|---|",
    ]
    for s in evidence["scenarios"]:
        lines.append(
            f"| {s['scenario']} | {s['gate']} | {s['passed']} | {s['trials']} | {s['lcb']:.4f} |"
        )
    lines += ["", "## Rounds", ""]
    for r in evidence["rounds"]:
        unfired = ", ".join(r["faults_unfired"]) or "none"
        lines.append(
            f"- Round {r['number']} ({r['seconds']} s): faults armed "
            f"{'; '.join(r['faults_armed'])}; not fired: {unfired}"
        )
    lines += [
        "",
        "## Runs",
        "",
        "| Round | Scenario | Result | Workflow | Outcome |",
        "|---|---|---|---|---|",
    ]
    for t in evidence["trials"]:
        result = "pass" if t["ok"] else "FAIL"
        if t["error"]:
            lines.append(f"| {t['round']} | {t['scenario']} | {result} | - | {t['error']} |")
        for c in t["cases"]:
            wf = f"[{c['workflow_id']}]({c['ui']})" if c["ui"] else "-"
            outcome = f"{c['actual']} (expected {c['expected']})".replace("|", "/")
            if c["problems"]:
                outcome += ": " + "; ".join(c["problems"]).replace("|", "/")
            lines.append(f"| {t['round']} | {t['scenario']} | {result} | {wf} | {outcome} |")
    return "\n".join(lines) + "\n"
