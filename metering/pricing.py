"""Prices per model: operator overrides first (tenant, then global), then `genai-prices` data.

All figures are USD per million tokens as `Decimal`. A model nobody prices resolves to None, so
the ledger can record it as unpriced rather than as free.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from django.utils import timezone
from genai_prices import data_snapshot
from genai_prices.types import TieredPrices

from .models import PriceOverride
from .process_cache import ProcessTable

MTOK = Decimal(1_000_000)
COST_QUANTUM = Decimal("0.000000001")


@dataclass(frozen=True)
class Usage:
    """Token counts in OpenAI's convention: prompt includes cached and cache-write tokens."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class Rates:
    input: Decimal
    output: Decimal
    cached_input: Decimal
    cache_write: Decimal
    source: str

    def cost_for(self, usage: Usage) -> Decimal:
        """USD, Decimal, rounded half-up to 1e-9. Reasoning tokens are part of completion tokens."""
        uncached = max(usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens, 0)
        micro = (
            uncached * self.input
            + usage.cached_tokens * self.cached_input
            + usage.cache_write_tokens * self.cache_write
            + usage.completion_tokens * self.output
        )
        return (micro / MTOK).quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)

    def worst_case_cost(self, *, prompt_tokens: int, max_completion_tokens: int) -> Decimal:
        """An upper bound for admission: every prompt token at the full input price."""
        return Rates.cost_for(self, Usage(prompt_tokens=prompt_tokens, completion_tokens=max_completion_tokens))


def _flat(price, input_tokens: int) -> Decimal | None:
    """A tiered price resolved for a request's input size (the cliff model genai-prices documents)."""
    if price is None:
        return None
    if isinstance(price, TieredPrices):
        chosen = price.base
        for tier in price.tiers:
            if input_tokens > tier.start:
                chosen = tier.price
        return chosen
    return Decimal(price)


def _package_model_price(model: str, provider_id: str | None, at: datetime):
    snapshot = data_snapshot.get_snapshot()
    try:
        _, model_info = snapshot.find_provider_model(model, None, provider_id, None)
    except LookupError:
        if provider_id is None:
            return None
        try:
            _, model_info = snapshot.find_provider_model(model, None, None, None)
        except LookupError:
            return None
    return model_info.get_prices(at)


def _package_rates(model: str, provider_id: str | None, at: datetime, input_tokens: int) -> Rates | None:
    return _package_rates_in_hour(model, provider_id, int(at.timestamp() // 3600), input_tokens)


@lru_cache(maxsize=4096)
def _package_rates_in_hour(model: str, provider_id: str | None, hour: int, input_tokens: int) -> Rates | None:
    """Package prices change on the hour at most (the package's granularity here): one lookup per
    model, provider, hour and input size, not one per request."""
    price = _package_model_price(model, provider_id, datetime.fromtimestamp(hour * 3600, UTC))
    if price is None:
        return None
    input_rate = _flat(getattr(price, "input_mtok", None), input_tokens)
    output_rate = _flat(getattr(price, "output_mtok", None), input_tokens)
    if input_rate is None:
        return None
    cached = _flat(getattr(price, "cache_read_mtok", None), input_tokens)
    write = _flat(getattr(price, "cache_write_mtok", None), input_tokens)
    return Rates(
        input=input_rate,
        output=output_rate if output_rate is not None else Decimal("0"),
        cached_input=cached if cached is not None else input_rate,
        cache_write=write if write is not None else input_rate,
        source="genai-prices",
    )


def _load_overrides() -> dict[str, list[tuple]]:
    """Override rows by model, newest first."""
    by_model: dict[str, list[tuple]] = {}
    for row in PriceOverride.objects.order_by("-effective_from").values_list(
        "model",
        "tenant_id",
        "effective_from",
        "input_usd_per_mtok",
        "output_usd_per_mtok",
        "cached_input_usd_per_mtok",
        "cache_write_usd_per_mtok",
    ):
        by_model.setdefault(row[0], []).append(row[1:])
    return by_model


# Held in process so pricing never waits on the network.
_overrides = ProcessTable(_load_overrides)
forget_overrides = _overrides.forget


def _override_rates(model: str, tenant_id: int | None, at: datetime) -> Rates | None:
    """The newest override in force: the tenant's own first, else the global one."""
    best_global = None
    for row_tenant, start, inp, out, cached, write in _overrides.get().get(model, ()):
        if start > at or (row_tenant is not None and row_tenant != tenant_id):
            continue
        rates = Rates(
            inp,
            out,
            inp if cached is None else cached,
            inp if write is None else write,
            "override" if row_tenant is None else "tenant",
        )
        if row_tenant is not None:
            return rates
        best_global = best_global or rates
    return best_global


def rates_for(
    model: str,
    *,
    provider_kind: str | None = None,
    tenant_id: int | None = None,
    at: datetime | None = None,
    input_tokens: int = 0,
) -> Rates | None:
    """The prices in force for `model` at `at` (now by default); None when the model is unpriced."""
    at = at or timezone.now()
    rates = _override_rates(model, tenant_id, at)
    if rates is not None:
        return rates
    provider_id = {"openai": "openai", "anthropic": "anthropic"}.get(provider_kind or "")
    return _package_rates(model, provider_id, at, input_tokens)


def list_price_rates(model: str, provider_kind: str, at: datetime, input_tokens: int = 0) -> Rates | None:
    """The provider's list price for `model` (the price data alone: no override applies)."""
    return _package_rates(model, {"openai": "openai", "anthropic": "anthropic"}.get(provider_kind), at, input_tokens)


def usd_str(value: Decimal | None) -> str | None:
    """Money for JSON: a plain decimal string with 9 places ("0.000000000", never "0E-9")."""
    if value is None:
        return None
    return format(Decimal(value).quantize(COST_QUANTUM, rounding=ROUND_HALF_UP), "f")
