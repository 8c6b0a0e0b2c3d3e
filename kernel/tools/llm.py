"""The LLM tool: complete a pinned prompt with a pinned model."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from kernel.contracts import RetrySpec, SideEffect, ToolContract, ToolModel

# --- LLM -----------------------------------------------------------------------------


class CompleteInput(ToolModel):
    model: str
    prompt_id: str
    prompt_version: str
    variables: dict[str, str] = Field(default_factory=dict)
    max_tokens: int = Field(gt=0, le=8192)


class CompleteOutput(ToolModel):
    text: str
    model: str
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    finish_reason: str = "stop"


COMPLETE = ToolContract(
    name="llm.complete",
    version="1",
    description="Complete a pinned prompt with a pinned model (template model offline).",
    input_model=CompleteInput,
    output_model=CompleteOutput,
    side_effect=SideEffect.READ,
    provider="llm",
    scopes=frozenset({"llm:complete"}),
    timeout=timedelta(seconds=60),
    retry=RetrySpec(max_attempts=3),
    token_budget_field="max_tokens",  # noqa: S106
    trace_fields=frozenset(
        {
            "model",
            "prompt_id",
            "prompt_version",
            "max_tokens",
            "input_tokens",
            "output_tokens",
            "finish_reason",
        }
    ),
)
