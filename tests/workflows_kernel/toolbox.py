"""Test tools: contracts, a registry, and activities that count their calls."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from kernel.contracts import CallContext, RetrySpec, SideEffect, ToolContract, ToolModel
from kernel.registry import ToolRegistry
from kernel.tools.llm import COMPLETE


class ReadInput(ToolModel):
    key: str
    note: str = ""


class ReadOutput(ToolModel):
    echo: str


class LlmInput(ToolModel):
    prompt: str
    max_tokens: int


class LlmOutput(ToolModel):
    text: str
    model: str
    input_tokens: int
    output_tokens: int


_FAST = timedelta(seconds=10)
_ONCE = RetrySpec(max_attempts=1)


def _tool(name: str, side_effect: SideEffect, scope: str, **over: Any) -> ToolContract:
    """A fast, try-once test contract; ``over`` replaces any field."""
    fields: dict[str, Any] = {
        "name": name,
        "version": "1",
        "description": "",
        "input_model": ReadInput,
        "output_model": ReadOutput,
        "side_effect": side_effect,
        "provider": "internal",
        "scopes": frozenset({scope}),
        "timeout": _FAST,
        "retry": _ONCE,
    }
    return ToolContract(**(fields | over))


READ = _tool(
    "test.read", SideEffect.READ, "test:read", trace_fields=frozenset({"key", "note", "echo"})
)
WRITE = _tool("test.write", SideEffect.WRITE, "test:write")
PAID = _tool("test.paid", SideEffect.READ, "test:read", provider="testpaid")
LLM = _tool(
    "test.llm",
    SideEffect.READ,
    "test:llm",
    provider="llm",
    input_model=LlmInput,
    output_model=LlmOutput,
    token_budget_field="max_tokens",
)
FAIL = _tool("test.fail", SideEffect.READ, "test:read")
SECRET = _tool("test.secret", SideEffect.WRITE, "test:admin")

# ``llm.complete`` is the real contract (its activity: activities.llm_activities).
TEST_REGISTRY = ToolRegistry([READ, WRITE, PAID, LLM, FAIL, SECRET, COMPLETE])


class TestTools:
    """Activities behind the test contracts; ``calls`` counts every execution."""

    __test__ = False

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    @activity.defn(name=READ.activity_name)
    async def read(self, ctx: CallContext, input: ReadInput) -> ReadOutput:
        self.calls[ctx.ref] += 1
        return ReadOutput(echo=f"{input.key}:{ctx.external_key}")

    @activity.defn(name=WRITE.activity_name)
    async def write(self, ctx: CallContext, input: ReadInput) -> ReadOutput:
        self.calls[ctx.ref] += 1
        return ReadOutput(echo=input.key)

    @activity.defn(name=PAID.activity_name)
    async def paid(self, ctx: CallContext, input: ReadInput) -> ReadOutput:
        self.calls[ctx.ref] += 1
        return ReadOutput(echo=input.key)

    @activity.defn(name=LLM.activity_name)
    async def llm(self, ctx: CallContext, input: LlmInput) -> LlmOutput:
        self.calls[ctx.ref] += 1
        return LlmOutput(text="ok", model="test-model", input_tokens=40, output_tokens=60)

    @activity.defn(name=FAIL.activity_name)
    async def fail(self, ctx: CallContext, input: ReadInput) -> ReadOutput:
        self.calls[ctx.ref] += 1
        raise ApplicationError(
            f"provider rejected {input.note}", type="ProviderError", non_retryable=True
        )

    @activity.defn(name=SECRET.activity_name)
    async def secret(self, ctx: CallContext, input: ReadInput) -> ReadOutput:
        self.calls[ctx.ref] += 1
        return ReadOutput(echo="should never run")

    def all(self) -> list[Callable[..., Any]]:
        return [self.read, self.write, self.paid, self.llm, self.fail, self.secret]
