"""The kernel's refusals: a stable code (:class:`kernel.codes.ErrorCode`, documented in
docs/kernel.md) and why a run was terminated.

Pure: no Temporal, no I/O. ``kernel.call`` turns a gate refusal into a non-retryable
``ApplicationError`` whose ``type`` is the code.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from kernel.codes import ErrorCode


class TerminationReason(StrEnum):
    """Why the gate ended the run; ``termination_reason`` names the bound."""

    MAX_STEPS = "max_steps"
    MAX_TOOL_CALLS = "max_tool_calls"
    MAX_WALL_TIME = "max_wall_time"
    MAX_TOKENS = "max_tokens"
    MAX_COST = "max_cost"
    LOOP_DETECTED = "loop_detected"


class KernelError(Exception):
    """A refusal by the kernel, with a stable code and a JSON-safe detail."""

    def __init__(self, code: ErrorCode, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail or {}

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class ToolUnknownError(KernelError):
    def __init__(self, name: str, version: str) -> None:
        super().__init__(
            ErrorCode.TOOL_UNKNOWN,
            f"no tool {name}@{version} in the registry",
            {"tool": f"{name}@{version}"},
        )
