"""Without the `local` extra (the production image), the local stack's binaries are
missing and say so with their stable codes and the install command, no traceback."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from autobiz.devstack import services
from autobiz.errors import ServiceStartError
from kernel.codes import ErrorCode

pytestmark = pytest.mark.unit


def test_no_temporal_binary_is_temporal_binary_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceStartError) as caught:
        services.temporal_binary()
    assert caught.value.code == ErrorCode.TEMPORAL_BINARY_MISSING
    assert caught.value.hint is not None and "'.[local]'" in caught.value.hint


def test_no_pgserver_is_postgres_binary_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pgserver" else real(name, *a),
    )
    with pytest.raises(ServiceStartError) as caught:
        services._pg_bin("initdb")
    assert caught.value.code == ErrorCode.POSTGRES_BINARY_MISSING
    assert caught.value.hint is not None and "'.[local]'" in caught.value.hint
