"""The providers' published specs the tests check against, in
``shared/reference/fidelity/`` beside the checkout (or above it)."""

from __future__ import annotations

from pathlib import Path


def fidelity_file(name: str) -> Path | None:
    """The file ``name`` of ``shared/reference/fidelity/`` in the nearest folder above
    this checkout that has it; None where none has."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "reference" / "fidelity" / name
        if candidate.is_file():
            return candidate
    return None
