"""LLM tool: complete a pinned prompt with a pinned model, and report the tokens.

The run pins the model, its fallback and the prompt (id, version, optionally its hash)
in the input; the output names the model that answered and the prompt's hash, so the
trace shows exactly what produced the text. Within one attempt the primary model is
tried once and, on a timeout, a 5xx or a 429, the fallback once; if that fails too the
error goes to Temporal, which retries the activity with the contract's backoff (a
429's ``Retry-After`` as the next delay). Refusals (unknown prompt, wrong variables, a
model this worker does not serve, a 4xx) are not retried.

The output is text and counts only; the kernel charges ``input_tokens`` +
``output_tokens`` to the run's ``max_tokens`` and their price (at ``model``) to its
cost. Nothing the model writes can choose a tool: that is the workflow's decision.
"""

from __future__ import annotations

import logging
from typing import Protocol

from temporalio import activity

from activities.errors import provider_errors
from autobiz.ledger.executor import verify_call
from autobiz.providers.errors import InvalidRequest, ProviderUnavailable, RateLimited
from autobiz.providers.llm_client import Completion, LlmClient
from autobiz.providers.llm_prompts import PROVIDER, RenderedPrompt, prompt_for, render
from kernel import tools
from kernel.contracts import CallContext
from kernel.tools.llm import CompleteInput, CompleteOutput

log = logging.getLogger(__name__)

# Failures after which the fallback model gets its one try.
FALL_BACK_ON = (ProviderUnavailable, RateLimited)


class LlmSource(Protocol):
    """Where the tenant's LLM client comes from (:class:`TenantClients` is one)."""

    async def llm(self, tenant_id: str) -> LlmClient: ...


class LlmActivities:
    def __init__(self, clients: LlmSource) -> None:
        self._clients = clients

    @activity.defn(name=tools.llm.COMPLETE.activity_name)
    async def complete(self, ctx: CallContext, input: CompleteInput) -> CompleteOutput:
        with provider_errors():
            verify_call(ctx, input)
            prompt = _pinned_prompt(input)
            client = await self._clients.llm(ctx.tenant_id)
            _ensure_served(client, input)
            completion, fell_back = await _with_fallback(client, input, prompt)
        return CompleteOutput(
            text=completion.text,
            model=completion.model,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            finish_reason=completion.finish_reason,
            confidence=completion.confidence,
            prompt_id=input.prompt_id,
            prompt_version=input.prompt_version,
            prompt_hash=prompt.prompt.sha256,
            fallback_used=fell_back,
        )


def _pinned_prompt(input: CompleteInput) -> RenderedPrompt:
    """The prompt the input names, refused if its words are not the ones pinned."""
    prompt = prompt_for(input.prompt_id, input.prompt_version)
    if input.prompt_hash is not None and input.prompt_hash != prompt.sha256:
        raise InvalidRequest(
            f"prompt {prompt.id}@{prompt.version} is not the one pinned "
            f"(sha256 {prompt.sha256[:12]}…, pinned {input.prompt_hash[:12]}…)",
            provider=PROVIDER,
            provider_code="prompt_hash_mismatch",
        )
    return render(prompt, input.variables)


def _ensure_served(client: LlmClient, input: CompleteInput) -> None:
    """A pinned model this worker cannot serve is refused, never silently replaced."""
    pinned = {input.model} | ({input.fallback_model} if input.fallback_model else set())
    missing = sorted(pinned - client.models)
    if missing:
        raise InvalidRequest(
            f"model(s) {missing} not served here (serving {sorted(client.models)})",
            provider=PROVIDER,
            provider_code="model_not_served",
        )


async def _with_fallback(
    client: LlmClient, input: CompleteInput, prompt: RenderedPrompt
) -> tuple[Completion, bool]:
    """The primary once; on a timeout/5xx/429 the fallback once. (completion, fell back)"""
    fallback = input.fallback_model if input.fallback_model != input.model else None
    try:
        return await client.complete(input.model, prompt, input.max_tokens), False
    except FALL_BACK_ON as exc:
        if fallback is None:
            raise
        log.warning(
            "llm %s failed (%s, http %s); trying %s",
            input.model,
            exc.provider_code,
            exc.http_status,
            fallback,
        )
    return await client.complete(fallback, prompt, input.max_tokens), True
