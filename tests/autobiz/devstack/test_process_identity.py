"""A pid file knows its process by the boot's id and the start in clock ticks, which no
clock adjustment moves; the wall-clock start time psutil reports moves with every NTP
step (boot time = now - uptime), and a running service must not be taken for a stranger
because of one."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from autobiz.devstack.process import PidFiles, ProcessRecord, spawn, start_stamp, stop

pytestmark = pytest.mark.unit


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[ProcessRecord]:
    rec = spawn(
        "sleeper",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        log_file=tmp_path / "sleeper.log",
    )
    yield rec
    stop(rec, timeout=5)


def test_a_record_survives_the_clock_stepping(sleeper: ProcessRecord, tmp_path: Path) -> None:
    assert sleeper.start is not None and sleeper.alive()
    # NTP stepped the clock 5 s after the record was written: psutil's wall-clock start
    # time no longer matches, the ticks since boot still do.
    stepped = dataclasses.replace(sleeper, create_time=sleeper.create_time - 5.0)
    files = PidFiles(tmp_path / "run")
    files.write(stepped)
    read = files.read("sleeper")
    assert read is not None and read.start == sleeper.start
    assert read.alive()


def test_a_reused_pid_is_a_stranger(sleeper: ProcessRecord) -> None:
    assert sleeper.start is not None
    boot_id, ticks = sleeper.start
    # Same pid, same wall-clock time, started at another tick: someone else's process.
    reused = dataclasses.replace(sleeper, start=[boot_id, ticks + 1])
    assert not reused.alive()
    # Another boot: the ticks count from a different zero.
    rebooted = dataclasses.replace(sleeper, start=["another-boot", ticks])
    assert not rebooted.alive()
    assert stop(reused) is False and sleeper.alive()


def test_an_older_pid_file_without_ticks_is_judged_by_wall_clock(
    sleeper: ProcessRecord, tmp_path: Path
) -> None:
    legacy = dataclasses.replace(sleeper, start=None)
    assert legacy.alive()
    assert not dataclasses.replace(legacy, create_time=legacy.create_time - 5.0).alive()


def test_start_stamp_reads_a_command_name_with_spaces_and_parentheses(tmp_path: Path) -> None:
    odd = tmp_path / "a (b) c"
    odd.symlink_to(sys.executable)
    proc = subprocess.Popen([str(odd), "-c", "import time; time.sleep(30)"])
    try:
        stamp = start_stamp(proc.pid)
        assert stamp is not None and stamp[1] > 0
        assert stamp == start_stamp(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert start_stamp(proc.pid) is None
