"""Recorded OpenAI chat-completions exchanges (tests/autobiz/providers/recordings/) and
the settings that point an :class:`OpenAICompatible` client at a respx-mocked server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from autobiz.settings import LlmSettings, Settings

RECORDINGS = Path(__file__).resolve().parents[1] / "autobiz" / "providers" / "recordings"
BASE_URL = "http://127.0.0.1:11434"
CHAT_URL = f"{BASE_URL}/v1/chat/completions"
PRIMARY = "gpt-4o-mini-2024-07-18"
FALLBACK = "gpt-4o-2024-08-06"
# A made-up key with a shape of its own, so a leak anywhere is easy to find.
API_KEY = "sk-test-autobiz-llm-7Qk2Zr9Wm4"


def recorded(name: str) -> httpx.Response:
    """The recorded answer ``name`` (``chat_completion_ok``, ``error_429``, …)."""
    data: dict[str, Any] = json.loads((RECORDINGS / f"{name}.json").read_text())
    return httpx.Response(data["status_code"], headers=data["headers"], json=data["body"])


def llm_settings(**over: Any) -> Settings:
    fields: dict[str, Any] = {
        "provider": "openai_compatible",
        "base_url": BASE_URL,
        "primary_model": PRIMARY,
        "fallback_model": FALLBACK,
        "api_key": SecretStr(API_KEY),
        "timeout_seconds": 2.0,
    }
    return Settings(llm=LlmSettings(**(fields | over)))


def wismo_variables(**over: str) -> dict[str, str]:
    values = {
        "order_name": "#1001",
        "status": "shipped",
        "carrier": "UPS",
        "tracking_number": "1Z999AA10123456784",
        "tracking_url": "https://www.ups.com/track?tracknum=1Z999AA10123456784",
        "customer_name": "Ada",
        "customer_message": "Hi, where is my order #1001?",
    }
    return values | over
