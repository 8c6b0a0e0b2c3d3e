"""``llm.complete`` under the run's bounds, through the gate on the dev server: the
tokens the activity reports (the template model's, offline) are charged to the run at
the pinned model's price, and the next call that would cross ``max_tokens`` or
``max_cost_usd`` ends the run with that bound's reason before its activity runs. And
when primary and fallback are both unavailable, Temporal retries the activity."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import Client

from activities.llm_activities import LlmActivities
from autobiz.providers.errors import ProviderUnavailable
from autobiz.providers.llm_client import TEMPLATE_MODEL, Completion, LlmClient, TemplateModel
from autobiz.providers.llm_prompts import WISMO_REPLY_V1, RenderedPrompt, render
from kernel.cost import DEFAULT_PRICES
from kernel.policy import Bounds, LoopPolicy, RunPolicy
from tests.support.llm_recordings import wismo_variables
from tests.workflows_kernel.gate_workflow import Call, GateTestInput
from tests.workflows_kernel.test_gate_in_workflow import kclient, last_refusal, run
from tests.workflows_kernel.toolbox import TestTools

pytestmark = pytest.mark.integration
__all__ = ["kclient"]  # the fixture, shared with the gate tests

MAX_TOKENS_PER_CALL = 100


class CountingTemplate:
    """The template model, counting the completions it answers."""

    def __init__(self) -> None:
        self.model = TemplateModel()
        self.completions = 0

    async def llm(self, tenant_id: str) -> LlmClient:
        self.completions += 1
        return self.model


async def one_call_tokens() -> tuple[int, int]:
    """(input, output) tokens of one template completion of the calls below."""
    prompt = render(WISMO_REPLY_V1, wismo_variables())
    out = await TemplateModel().complete(TEMPLATE_MODEL, prompt, MAX_TOKENS_PER_CALL)
    return out.input_tokens, out.output_tokens


def draft(step: str) -> Call:
    input = {
        "model": TEMPLATE_MODEL,
        "prompt_id": "wismo_reply",
        "prompt_version": "1",
        "variables": wismo_variables(),
        "max_tokens": MAX_TOKENS_PER_CALL,
    }
    return Call(tool="llm.complete", input=input, step=step)


def llm_policy(**bounds: Any) -> RunPolicy:
    base: dict[str, Any] = dict(
        max_steps=50,
        max_tool_calls=50,
        max_wall_time=timedelta(hours=1),
        max_tokens=10_000,
        max_cost_usd=Decimal("1"),
    )
    return RunPolicy(
        tenant_id="test-tenant",
        workflow_type="gate_test",
        tools=frozenset({"llm.complete@1"}),
        scopes=frozenset({"llm:complete"}),
        bounds=Bounds(**(base | bounds)),
        loop=LoopPolicy(threshold=3),
        prices=DEFAULT_PRICES,
    )


async def test_tokens_used_end_the_run_at_max_tokens(kclient: Client, task_queue: str) -> None:
    in_tokens, out_tokens = await one_call_tokens()
    used = in_tokens + out_tokens
    # The first call fits (0 + 100 requested); the second only would have without the
    # first one's real usage: used + 100 > used + 50.
    source = CountingTemplate()
    inp = GateTestInput(
        policy=llm_policy(max_tokens=used + MAX_TOKENS_PER_CALL // 2),
        calls=[draft("first"), draft("second")],
    )
    result, summary, _ = await run(
        kclient, task_queue, TestTools(), inp, extra=[LlmActivities(source).complete]
    )
    assert result.outcomes == ["ok", "RUN_TERMINATED"]
    assert source.completions == 1  # the second activity never ran
    assert summary.termination_reason == "max_tokens"
    assert summary.tokens == used
    assert last_refusal(summary).detail["observed"] == str(used + MAX_TOKENS_PER_CALL)
    [succeeded] = [e for e in summary.entries if e.kind == "tool_succeeded"]
    output = succeeded.detail["output"]
    assert output["prompt_hash"] == WISMO_REPLY_V1.sha256  # the trace shows the pinned prompt
    assert (output["model"], output["prompt_id"], output["prompt_version"]) == (
        TEMPLATE_MODEL,
        "wismo_reply",
        "1",
    )
    assert "text" not in output


async def test_token_cost_ends_the_run_at_max_cost(kclient: Client, task_queue: str) -> None:
    in_tokens, out_tokens = await one_call_tokens()
    cost = DEFAULT_PRICES.token_cost(TEMPLATE_MODEL, in_tokens, out_tokens)
    assert cost > 0  # the offline model still costs (cost > 0 whenever an LLM was called)
    source = CountingTemplate()
    inp = GateTestInput(
        policy=llm_policy(max_cost_usd=Decimal(cost - 1) / 1_000_000),
        calls=[draft("first"), draft("second")],
    )
    result, summary, _ = await run(
        kclient, task_queue, TestTools(), inp, extra=[LlmActivities(source).complete]
    )
    assert result.outcomes == ["ok", "RUN_TERMINATED"]
    assert source.completions == 1
    assert summary.termination_reason == "max_cost"
    assert summary.cost_micros == cost


class FlakyTemplate(CountingTemplate):
    """Both models unavailable on the first attempt; the template model afterwards."""

    def __init__(self, failing_attempts: int) -> None:
        super().__init__()
        self.failing = failing_attempts
        self.tried: list[str] = []

    async def llm(self, tenant_id: str) -> LlmClient:
        await super().llm(tenant_id)
        return self

    @property
    def models(self) -> frozenset[str]:
        return frozenset({TEMPLATE_MODEL, "template-fallback"})

    async def complete(self, model: str, prompt: RenderedPrompt, max_tokens: int) -> Completion:
        self.tried.append(model)
        if self.failing > 0:
            if model == "template-fallback":
                self.failing -= 1
            raise ProviderUnavailable("overloaded", provider="llm", http_status=503)
        return await self.model.complete(model, prompt, max_tokens)

    async def aclose(self) -> None:
        return None


async def test_unavailable_models_are_retried_by_temporal(kclient: Client, task_queue: str) -> None:
    """Primary and fallback fail in attempt 1; Temporal's retry (the contract's backoff)
    runs attempt 2, whose primary answers; only that answer's tokens are counted."""
    in_tokens, out_tokens = await one_call_tokens()
    source = FlakyTemplate(failing_attempts=1)
    call = draft("first")
    call.input["fallback_model"] = "template-fallback"
    inp = GateTestInput(policy=llm_policy(), calls=[call])
    result, summary, _ = await run(
        kclient, task_queue, TestTools(), inp, extra=[LlmActivities(source).complete]
    )
    assert result.outcomes == ["ok"]
    assert source.tried == [TEMPLATE_MODEL, "template-fallback", TEMPLATE_MODEL]
    assert source.completions == 2  # two activity attempts
    assert summary.tokens == in_tokens + out_tokens
