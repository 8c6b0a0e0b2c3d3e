"""The workflow modules' bytecode is written when a worker is built, so the sandbox's
per-run import loads it instead of compiling the source (workers.bytecode)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from workers.bytecode import write_bytecode
from workers.worker import WORKFLOWS


@pytest.fixture
def flow_module(tmp_path: Path) -> Iterator[tuple[type, Path]]:
    """A fresh module defining one class, imported without any cached bytecode."""
    name = f"bytecode_probe_{tmp_path.name.replace('-', '_')}"
    source = tmp_path / f"{name}.py"
    source.write_text("class Flow:\n    pass\n")
    spec = importlib.util.spec_from_file_location(name, source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    for stale in tmp_path.glob("__pycache__/*"):
        stale.unlink()
    try:
        yield module.Flow, source
    finally:
        del sys.modules[name]


def _loads_without_compiling(source: Path, monkeypatch: pytest.MonkeyPatch) -> bool:
    """What the import system does for ``source`` now, with compiling made to fail."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled from source")

    monkeypatch.setattr(importlib.machinery.SourceFileLoader, "source_to_code", refuse)
    loader = importlib.machinery.SourceFileLoader(source.stem, str(source))
    try:
        loader.get_code(source.stem)
    except AssertionError:
        return False
    finally:
        monkeypatch.undo()
    return True


def test_a_module_without_bytecode_gets_it_once_and_again_after_an_edit(
    flow_module: tuple[type, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    flow, source = flow_module
    assert not _loads_without_compiling(source, monkeypatch)

    written = write_bytecode([flow, flow])
    assert written == [Path(importlib.util.cache_from_source(str(source)))]
    assert _loads_without_compiling(source, monkeypatch)
    assert write_bytecode([flow]) == []  # current: left alone

    source.write_text(
        textwrap.dedent("""
        class Flow:
            edited = True
    """)
    )
    assert not _loads_without_compiling(source, monkeypatch)
    assert write_bytecode([flow]) == written
    assert _loads_without_compiling(source, monkeypatch)


def test_a_tree_it_cannot_write_to_is_left_as_it_is(
    flow_module: tuple[type, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    flow, _ = flow_module
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setattr(sys, "pycache_prefix", str(blocker))
    assert write_bytecode([flow]) == []


def test_every_workflow_the_worker_runs_loads_from_bytecode_afterwards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_bytecode(WORKFLOWS)
    sources = {Path(sys.modules[w.__module__].__file__ or "") for w in WORKFLOWS}
    assert len(sources) >= 8
    for source in sources:
        assert _loads_without_compiling(source, monkeypatch), source
