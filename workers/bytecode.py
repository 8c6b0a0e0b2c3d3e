"""The workflow modules' bytecode, written once when a worker is built.

The workflow sandbox imports a run's workflow module afresh for every run it starts, so
that module state belongs to one run. Without a cached ``.pyc`` — ``PYTHONDONTWRITEBYTECODE``
with a tree never compiled, an editable install — each of those imports compiles the
source again: 5.4 ms for ``order_fulfill.py`` on the bench machine, against 0.12 ms to
load its bytecode, once per OrderFulfill (bench/README.md, issue 15). ``pip install``
compiles what it installs, so the image has them; this covers every other way to run.
``py_compile`` writes whatever ``sys.dont_write_bytecode`` says; a tree it may not write
to is left as it is (the sandbox then compiles, as before).
"""

from __future__ import annotations

import importlib.util
import logging
import py_compile
import sys
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


def workflow_sources(workflows: Iterable[type]) -> list[Path]:
    """The source files of the modules that define ``workflows`` (each once)."""
    found: dict[Path, None] = {}
    for cls in workflows:
        file = getattr(sys.modules.get(cls.__module__), "__file__", None)
        if file is not None and file.endswith(".py"):
            found[Path(file)] = None
    return list(found)


def write_bytecode(workflows: Iterable[type]) -> list[Path]:
    """Compile each workflow module whose cached bytecode is missing or older than its
    source; returns the files written."""
    written = []
    for source in workflow_sources(workflows):
        cached = Path(importlib.util.cache_from_source(str(source)))
        try:
            if _current(source, cached):
                continue
            py_compile.compile(str(source), cfile=str(cached), doraise=True)
        except (OSError, py_compile.PyCompileError) as exc:
            log.debug("bytecode for %s not written: %s", source, exc)
            continue
        written.append(cached)
    return written


def _current(source: Path, cached: Path) -> bool:
    """``cached`` is what the import system would load for ``source`` as it is now: this
    interpreter's magic number, a timestamp header, the source's mtime and size."""
    try:
        head = cached.read_bytes()[:16]
    except OSError:
        return False
    st = source.stat()

    def word(i: int) -> int:
        return int.from_bytes(head[i : i + 4], "little")

    return (
        len(head) == 16
        and head[:4] == importlib.util.MAGIC_NUMBER
        and word(4) == 0
        and word(8) == int(st.st_mtime) & 0xFFFFFFFF
        and word(12) == st.st_size & 0xFFFFFFFF
    )
