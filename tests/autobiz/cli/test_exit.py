"""`autobiz` leaves without interpreter teardown once Temporal's native runtime is loaded
(temporalio/sdk-python#300 aborted ~1 in 7 short client processes with SIGABRT), keeping
the exit code, the exit handlers, non-daemon threads and the output."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

SCRIPT = """
import atexit, sys, threading, time
from autobiz.cli.main import _exit
atexit.register(lambda: print("exit handler ran", flush=True))
threading.Thread(target=lambda: (time.sleep(0.2), print("thread finished"))).start()
print("output", end="")
_exit({code!r})
"""


@pytest.mark.parametrize(("code", "expected"), [(0, 0), (None, 0), (3, 3), ("bye", 1)])
def test_exit_keeps_code_handlers_threads_and_output(code: object, expected: int) -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(code=code)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == expected, run.stderr
    assert run.stdout.startswith("output")
    assert "thread finished" in run.stdout and "exit handler ran" in run.stdout
    if isinstance(code, str):
        assert code in run.stderr
