"""`autobiz dev up / status` and the demo's config from a directory other than the checkout:
configs come from settings and package data, never the cwd; a failed `up` leaves the
running services running; `dev status` exits non-zero when part of the stack is down."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

pytestmark = pytest.mark.e2e

CHECKOUT_CONFIG = Path(__file__).resolve().parents[3] / "config"


def run(
    env: dict[str, str], cwd: Path, *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autobiz.cli.main", *args],
        env={**env, "COLUMNS": "400"},  # progress lines whole, not wrapped at 80
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def packaged_demo_config(env: dict[str, str], cwd: Path) -> Path:
    printed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from autobiz.settings import Settings; print(Settings().demo_config_dir)",
        ],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(printed.stdout.strip())


def worker_status(env: dict[str, str], cwd: Path) -> dict[str, object]:
    status = json.loads(ok(run(env, cwd, "dev", "status", "--json")).stdout)
    by_name: dict[str, dict[str, object]] = {s["name"]: s for s in status["services"]}
    return by_name["worker"]


def test_packaged_demo_config_checks_from_another_directory(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    demo = packaged_demo_config(stack_env, tmp_path)
    assert demo.is_absolute() and not demo.is_relative_to(tmp_path)
    assert sorted(p.name for p in demo.glob("*.yaml")) == ["corner-shop.yaml", "demo-shop.yaml"]
    # The checkout's documented config/demo is the same directory (a link to it).
    assert (CHECKOUT_CONFIG / "demo").samefile(demo)
    checked = ok(
        run(stack_env, tmp_path, "config", "check", *map(str, sorted(demo.glob("*.yaml"))))
    )
    assert checked.stdout.count(": ok") == 2


def test_missing_config_dir_names_the_absolute_path_and_starts_nothing(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    result = run(stack_env, tmp_path, "dev", "up")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error[CONFIG_MISSING]" in result.stderr
    assert str(tmp_path / "config") in result.stderr
    assert "AUTOBIZ_CONFIG_DIR" in result.stderr
    assert not (Path(stack_env["AUTOBIZ_HOME"]) / "run").exists()


async def test_worker_on_demo_config_from_anywhere_survives_a_broken_up(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    demo = packaged_demo_config(stack_env, elsewhere)
    metrics = f"http://{stack_env['AUTOBIZ_WORKER__METRICS_BIND']}/metrics"

    # The demo's worker, started from a directory that has no config/ at all.
    ok(run(stack_env, elsewhere, "dev", "up", "--config", str(demo)))
    worker = worker_status(stack_env, elsewhere)
    assert worker["state"] == "running"
    assert worker["details"]["config_dir"] == str(demo)  # type: ignore[index]
    pid = worker["pid"]

    # A plain `dev up` keeps the running worker's config, and says so.
    again = ok(run(stack_env, elsewhere, "dev", "up"))
    assert f"worker keeps its config {demo}" in again.stdout
    assert worker_status(stack_env, elsewhere)["pid"] == pid

    # A broken config is refused before the running worker is touched.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "demo-shop.yaml").write_text("tenant: [not, a, config\n")
    failed = run(stack_env, elsewhere, "dev", "up", "--config", str(broken))
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert "error[CONFIG_INVALID]" in failed.stderr
    assert "Traceback" not in failed.stderr
    worker = worker_status(stack_env, elsewhere)  # `dev status` exits 0: all is up
    assert (worker["pid"], worker["state"]) == (pid, "running")
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(metrics)).status_code == 200

    # Asking for another config restarts the worker, and says what changes.
    switched = ok(run(stack_env, elsewhere, "dev", "up", "--config", str(CHECKOUT_CONFIG)))
    assert f"restarting worker (config_dir: {demo} → {CHECKOUT_CONFIG})" in switched.stdout
    worker = worker_status(stack_env, elsewhere)
    assert worker["pid"] != pid
    assert worker["details"]["config_dir"] == str(CHECKOUT_CONFIG)  # type: ignore[index]

    # A service down while the rest runs: `dev status` says so and exits 4 (--json too).
    proc = psutil.Process(int(worker["pid"]))  # type: ignore[call-overload]
    proc.kill()
    proc.wait(timeout=10)
    degraded = run(stack_env, elsewhere, "dev", "status", "--json")
    assert degraded.returncode == 4, degraded.stdout + degraded.stderr
    states = {s["name"]: s["state"] for s in json.loads(degraded.stdout)["services"]}
    assert states["worker"] == "stopped" and states["temporal"] == "running"
    table = run(stack_env, elsewhere, "dev", "status")
    assert table.returncode == 4 and "stopped" in table.stdout

    # `dev up` brings it back on the config it last ran on (this directory has none);
    # after `dev down` nothing runs, which is no failure.
    ok(run(stack_env, elsewhere, "dev", "up"))
    worker = worker_status(stack_env, elsewhere)
    assert worker["state"] == "running"
    assert worker["details"]["config_dir"] == str(CHECKOUT_CONFIG)  # type: ignore[index]
    ok(run(stack_env, elsewhere, "dev", "down"))
    stopped = ok(run(stack_env, elsewhere, "dev", "status", "--json"))
    assert {s["state"] for s in json.loads(stopped.stdout)["services"]} == {"stopped"}
