"""The price table: LLM tokens at the pinned model's price plus provider call costs.

Amounts are integer micro-dollars (1 USD = 1_000_000), so sums are exact and
deterministic inside workflows; anything used rounds up, so a paid call never costs 0.
"""

from __future__ import annotations

from pydantic import Field

from kernel.frozen import Frozen

MICROS_PER_USD = 1_000_000


class ModelPrice(Frozen):
    # Micro-dollars per million tokens.
    input_per_mtok_micros: int = Field(ge=0)
    output_per_mtok_micros: int = Field(ge=0)


class PriceTable(Frozen):
    version: str = "2025-01"
    models: dict[str, ModelPrice] = Field(default_factory=dict)
    # Micro-dollars per call, by provider (``stripe``, ``printful``, …).
    provider_call_micros: dict[str, int] = Field(default_factory=dict)
    # Used for an LLM model missing from ``models``: never free.
    fallback_model: ModelPrice = ModelPrice(
        input_per_mtok_micros=15_000_000, output_per_mtok_micros=75_000_000
    )

    def call_cost(self, provider: str) -> int:
        return self.provider_call_micros.get(provider, 0)

    def token_cost(self, model: str, input_tokens: int, output_tokens: int) -> int:
        price = self.models.get(model, self.fallback_model)
        numerator = (
            input_tokens * price.input_per_mtok_micros
            + output_tokens * price.output_per_mtok_micros
        )
        return -(-numerator // 1_000_000)  # ceiling division


DEFAULT_PRICES = PriceTable(
    models={
        # The deterministic offline template model still "costs", so runs show cost > 0.
        "template-v1": ModelPrice(input_per_mtok_micros=100_000, output_per_mtok_micros=100_000),
        "claude-3-5-haiku-20241022": ModelPrice(
            input_per_mtok_micros=800_000, output_per_mtok_micros=4_000_000
        ),
        "gpt-4o-mini-2024-07-18": ModelPrice(
            input_per_mtok_micros=150_000, output_per_mtok_micros=600_000
        ),
    },
    provider_call_micros={
        "stripe": 100,
        "shopify": 50,
        "printful": 50,
        "sendgrid": 1_000,
        "llm": 0,
        "internal": 0,
    },
)


def micros_to_usd(micros: int) -> str:
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    return f"{sign}{micros // MICROS_PER_USD}.{micros % MICROS_PER_USD:06d}"
