"""The LLM behind ``llm.complete``: one protocol, two adapters, chosen by settings.

- :class:`TemplateModel` (the default, ``settings.llm.provider = "template"``): offline
  and deterministic. It answers a prompt's pinned ``offline_reply`` filled with the
  call's variables, at the prompt's fixed confidence; tokens are whitespace-separated
  words. The demo and the tests need no key.
- :class:`OpenAICompatible` (``"openai_compatible"``): ``POST {base_url}/v1/chat/completions``
  over httpx (OpenAI, vLLM, Ollama). The key is the tenant's ``llm_api_key`` credential
  (``settings.llm.api_key`` once :mod:`autobiz.providers.tenant_clients` has put it there);
  it goes in the ``Authorization`` header only and is scrubbed from error messages.

Either adapter sends the prompt's fixed system message as ``system`` and the filled
template (customer text inside) as ``user``, and returns text and token counts only:
no tool is offered to the model and none of its ``tool_calls`` is ever read. One call is
one request; no adapter retries. Failures map onto :mod:`autobiz.providers.errors`
(5xx/timeout → unavailable, 429 → rate limited with ``Retry-After``, other 4xx →
invalid request) so the activity can fall back and Temporal can back off.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, Field

from autobiz.providers.errors import InvalidRequest, ProviderError
from autobiz.providers.http import JsonClient, error_for_status, json_body
from autobiz.providers.hygiene import ensure_host_allowed, ensure_test_credential
from autobiz.providers.llm_prompts import PROVIDER, RenderedPrompt
from autobiz.settings import Settings

TEMPLATE_MODEL = "template-v1"
_CONFIDENCE_LINE = re.compile(r"\n?[ \t]*confidence:[ \t]*([01](?:\.\d+)?)[ \t]*\Z", re.I)


class Completion(BaseModel):
    text: str
    model: str
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    finish_reason: str = "stop"
    confidence: float | None = Field(default=None, ge=0, le=1)


class LlmClient(Protocol):
    @property
    def models(self) -> frozenset[str]:
        """The models this client serves (a call pinning another is refused)."""
        ...

    async def complete(self, model: str, prompt: RenderedPrompt, max_tokens: int) -> Completion:
        """One completion of ``prompt`` by ``model``, at most ``max_tokens`` out; once."""
        ...

    async def aclose(self) -> None: ...


def words(text: str) -> int:
    """The template model's token count: whitespace-separated words."""
    return len(text.split())


def split_confidence(text: str) -> tuple[str, float | None]:
    """The reply without its trailing ``Confidence: x`` line, and x (None if absent)."""
    found = _CONFIDENCE_LINE.search(text.rstrip())
    if found is None:
        return text.strip(), None
    value = float(found.group(1))
    body = text.rstrip()[: found.start()].strip()
    return body, value if 0.0 <= value <= 1.0 else None


class TemplateModel:
    """Offline and deterministic: same prompt and variables, same text and counts."""

    def __init__(self, model: str = TEMPLATE_MODEL) -> None:
        self._model = model

    @property
    def models(self) -> frozenset[str]:
        return frozenset({self._model})

    async def complete(self, model: str, prompt: RenderedPrompt, max_tokens: int) -> Completion:
        reply = prompt.offline_reply.split()
        finish = "length" if len(reply) > max_tokens else "stop"
        return Completion(
            text=" ".join(reply[:max_tokens]),
            model=model,
            input_tokens=words(prompt.system) + words(prompt.user),
            output_tokens=min(len(reply), max_tokens),
            finish_reason=finish,
            confidence=prompt.prompt.offline_confidence,
        )

    async def aclose(self) -> None:
        return None


class OpenAICompatible(JsonClient):
    """Chat completions over HTTP; text and usage out, nothing else."""

    provider = PROVIDER

    def __init__(self, settings: Settings, *, http: httpx.AsyncClient | None = None) -> None:
        cfg = settings.llm
        if cfg.api_key is not None:
            ensure_test_credential(PROVIDER, "llm.api_key", cfg.api_key, settings)
        ensure_host_allowed(PROVIDER, cfg.base_url, settings)
        super().__init__(http, cfg.timeout_seconds)
        self._key = cfg.api_key.get_secret_value() if cfg.api_key is not None else None
        self._url = f"{cfg.base_url.rstrip('/')}/v1/chat/completions"
        served = {cfg.primary_model, cfg.fallback_model}
        self._models = frozenset(m for m in served if m)

    @property
    def models(self) -> frozenset[str]:
        return self._models

    def request_body(self, model: str, prompt: RenderedPrompt, max_tokens: int) -> dict[str, Any]:
        """The fixed system message, the filled template as the user's; no tools."""
        return {
            "model": model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
            "max_tokens": max_tokens,
            "temperature": 0,
            "n": 1,
            "stream": False,
        }

    async def complete(self, model: str, prompt: RenderedPrompt, max_tokens: int) -> Completion:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        response = await self._send(
            "POST", self._url, headers=headers, json=self.request_body(model, prompt, max_tokens)
        )
        body = json_body(response)
        if response.status_code != 200:
            raise self._error(response, body)
        return self._completion(model, body)

    def _error(self, response: httpx.Response, body: Any) -> ProviderError:
        """OpenAI's ``{error: {message, type, code}}``, the key scrubbed from it."""
        error = body.get("error") if isinstance(body, dict) else None
        message, code = response.reason_phrase or "error", None
        if isinstance(error, dict):
            message = str(error.get("message") or message)
            code = error.get("code") or error.get("type")
        elif isinstance(error, str):  # some compatible servers answer {"error": "..."}
            message = error
        return error_for_status(
            PROVIDER,
            response.status_code,
            self._scrub(message),
            code=str(code) if code is not None else None,
            headers=response.headers,
        )

    def _completion(self, model: str, body: Any) -> Completion:
        try:
            choice = body["choices"][0]
            content = choice["message"].get("content")
            usage = body["usage"]
            input_tokens, output_tokens = (
                int(usage["prompt_tokens"]),
                int(usage["completion_tokens"]),
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise InvalidRequest(
                f"not a chat completion ({type(exc).__name__})",
                provider=PROVIDER,
                provider_code="malformed_response",
                http_status=200,
            ) from None
        if not isinstance(content, str) or not content.strip():
            raise InvalidRequest(
                "the model answered no text", provider=PROVIDER, provider_code="no_text"
            )
        text, confidence = split_confidence(content)
        return Completion(
            text=text,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            finish_reason=str(choice.get("finish_reason") or "stop"),
            confidence=confidence,
        )

    def _scrub(self, message: str) -> str:
        return message.replace(self._key, "***") if self._key else message

    def __repr__(self) -> str:
        return f"OpenAICompatible(url={self._url!r}, models={sorted(self._models)})"


def llm_client(settings: Settings, *, http: httpx.AsyncClient | None = None) -> LlmClient:
    """The adapter ``settings.llm.provider`` names."""
    if settings.llm.provider == "openai_compatible":
        return OpenAICompatible(settings, http=http)
    return TemplateModel()
