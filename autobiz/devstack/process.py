"""Processes the local stack starts, remembers by pid, and stops by pid.

A pid file (``<home>/run/<name>.json``) records the pid together with the process's
start time, so a pid the kernel later reuses for something else is never mistaken for
ours and never signalled. Where the kernel tells it (Linux), the start time is the
boot's id and the clock ticks since boot: the wall-clock start time psutil reports is
boot time + ticks, and the boot time moves whenever NTP adjusts the clock, so a running
service compared by wall clock alone could be taken for a stranger (and its port then
reported in use).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    create_time: float
    command: list[str]
    log_file: str
    info: dict[str, Any] = field(default_factory=dict)
    # (boot id, start ticks): None where /proc does not tell, or in an older pid file.
    start: list[Any] | None = None

    def process(self) -> psutil.Process | None:
        """The live process this record describes, or None if it is gone or was replaced."""
        try:
            proc = psutil.Process(self.pid)
            now = start_stamp(self.pid)
            if self.start is not None and now is not None:
                if list(now) != list(self.start):
                    return None
            elif abs(proc.create_time() - self.create_time) > 1.0:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    def alive(self) -> bool:
        return self.process() is not None


def start_stamp(pid: int) -> tuple[str, int] | None:
    """This boot's id and the process's start in clock ticks since boot (``starttime``,
    field 22 of ``/proc/<pid>/stat``): unchanged by any clock adjustment."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return boot_id, int(fields[19])
    except (IndexError, ValueError):
        return None


def _record(
    name: str, pid: int, command: list[str], log_file: Path, info: dict[str, Any]
) -> ProcessRecord:
    stamp = start_stamp(pid)
    return ProcessRecord(
        name=name,
        pid=pid,
        create_time=psutil.Process(pid).create_time(),
        command=command,
        log_file=str(log_file),
        info=info,
        start=list(stamp) if stamp else None,
    )


class PidFiles:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def path(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def read(self, name: str) -> ProcessRecord | None:
        path = self.path(name)
        try:
            data = json.loads(path.read_text())
            return ProcessRecord(**data)
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    def write(self, record: ProcessRecord) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path(record.name).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record), indent=2))
        tmp.replace(self.path(record.name))

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)


def spawn(
    name: str,
    command: Sequence[str],
    *,
    log_file: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    info: dict[str, Any] | None = None,
) -> ProcessRecord:
    """Start ``command`` detached (own session, output to ``log_file``) and describe it."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    return _record(name, proc.pid, list(command), log_file, info or {})


def record_for_pid(name: str, pid: int, command: list[str], log_file: Path) -> ProcessRecord:
    """Describe a process something else started (e.g. a postmaster forked by pg_ctl)."""
    return _record(name, pid, command, log_file, {})


def stop(record: ProcessRecord, *, sig: int = signal.SIGTERM, timeout: float = 20.0) -> bool:
    """Signal the recorded process, wait, then kill it and any children it left behind.

    Returns True if a live process was stopped, False if it was already gone.
    """
    proc = record.process()
    if proc is None:
        return False
    try:
        children = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    try:
        proc.send_signal(sig)
    except psutil.NoSuchProcess:
        return False
    _, alive = psutil.wait_procs([proc], timeout=timeout)
    for straggler in alive:
        straggler.kill()
    psutil.wait_procs(alive, timeout=5)
    # Children of ours that outlived their parent are ours too.
    leftover = [c for c in children if c.is_running()]
    for child in leftover:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _, still = psutil.wait_procs(leftover, timeout=5)
    for child in still:
        child.kill()
    return True


def wait_until(predicate: Any, *, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
