"""A real Prometheus server (Debian's ``prometheus`` package, next to ``promtool``) for a
test: scraping the given targets every second and evaluating the repository's rules.

Missing binary: a failure in CI, a skip elsewhere (as ``tests/support/promtool.py``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.promtool import INSTALL
from tests.support.stack import free_port


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        message = f"prometheus is needed (Debian's prometheus package: {INSTALL}; .ci/run does it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


@contextlib.contextmanager
def prometheus(workdir: Path, targets: dict[str, str], rule_files: list[Path]) -> Iterator[str]:
    """Run Prometheus with one static job per ``targets`` entry (job name → ``host:port``)
    and ``rule_files``; yield its base URL; stop it (by its pid) afterwards."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            prometheus_binary(),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (workdir / "prometheus.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def api(client: httpx.AsyncClient, url: str, path: str, **params: str) -> Any:
    """``GET /api/v1/<path>``: its ``data``, after checking the status is success."""
    resp = await client.get(f"{url}/api/v1/{path}", params=params)
    body = resp.json()
    assert resp.status_code == 200 and body["status"] == "success", (path, params, body)
    return body["data"]
