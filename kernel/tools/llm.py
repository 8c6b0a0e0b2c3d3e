"""The LLM tool: complete a pinned prompt with a pinned model."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from kernel.contracts import RetrySpec, SideEffect, ToolContract, ToolModel

# --- LLM -----------------------------------------------------------------------------


class CompleteInput(ToolModel):
    """Pinned by the run: the model (and the one to fall back to on timeout/5xx/429) and
    the prompt (id, version; optionally its hash, refused on mismatch). ``variables``
    are data (customer text among them): they fill the prompt's user message only."""

    model: str
    fallback_model: str | None = None
    prompt_id: str
    prompt_version: str
    prompt_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    variables: dict[str, str] = Field(default_factory=dict)
    max_tokens: int = Field(gt=0, le=8192)


class CompleteOutput(ToolModel):
    """Only text and counts: the model drafts, the workflow decides what runs next."""

    text: str
    model: str  # the model that answered (priced by the kernel)
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    finish_reason: str = "stop"
    # The model's own "Confidence: x" line (the template model's is fixed); None: none.
    confidence: float | None = Field(default=None, ge=0, le=1)
    prompt_id: str = ""
    prompt_version: str = ""
    prompt_hash: str = ""
    fallback_used: bool = False


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
            "fallback_model",
            "prompt_id",
            "prompt_version",
            "prompt_hash",
            "fallback_used",
            "confidence",
            "max_tokens",
            "input_tokens",
            "output_tokens",
            "finish_reason",
        }
    ),
)
