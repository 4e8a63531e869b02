"""What a call cost, in USD, from its usage and the model's prices (YAML ``prices`` override the
shipped table). Cached input is billed at the cached price (input price when none is known),
cache writes at the cache-write price."""

from __future__ import annotations

from dataclasses import dataclass

from relay_context.config.gateway import ModelPrices
from relay_context.gateway.model_table import ModelInfo
from relay_context.gateway.schema import Usage

PER_TOKEN = 1e-6


@dataclass(frozen=True, slots=True)
class Prices:
    input: float
    output: float
    cached_input: float
    cache_write: float

    @classmethod
    def of(cls, configured: ModelPrices | None, shipped: ModelInfo | None) -> Prices | None:
        if configured is not None:
            return cls(
                configured.input,
                configured.output,
                configured.cached_input
                if configured.cached_input is not None
                else configured.input,
                configured.cache_write if configured.cache_write is not None else configured.input,
            )
        if shipped is not None:
            return cls(
                shipped.input_price,
                shipped.output_price,
                shipped.cached_input_price
                if shipped.cached_input_price is not None
                else shipped.input_price,
                shipped.cache_write_price
                if shipped.cache_write_price is not None
                else shipped.input_price,
            )
        return None

    def cost(self, usage: Usage) -> float:
        fresh = max(0, usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens)
        return PER_TOKEN * (
            fresh * self.input
            + usage.cached_input_tokens * self.cached_input
            + usage.cache_write_tokens * self.cache_write
            + usage.output_tokens * self.output
        )


__all__ = ["Prices"]
