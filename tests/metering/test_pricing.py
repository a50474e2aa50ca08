from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from metering import pricing
from metering.models import PriceOverride
from metering.pricing import Rates, Usage

pytestmark = pytest.mark.django_db


def test_cost_counts_cached_and_cache_write_tokens_at_their_own_prices():
    rates = Rates(Decimal("3"), Decimal("15"), Decimal("0.30"), Decimal("3.75"), "test")
    usage = Usage(prompt_tokens=10_000, cached_tokens=6_000, cache_write_tokens=1_000, completion_tokens=2_000)
    # 3,000 uncached × 3 + 6,000 × 0.30 + 1,000 × 3.75 + 2,000 × 15, per million
    assert rates.cost_for(usage) == Decimal("0.044550000")


def test_cost_rounds_half_up_to_the_nanodollar():
    rates = Rates(Decimal("0.15"), Decimal("0.6"), Decimal("0.075"), Decimal("0.15"), "test")
    assert rates.cost_for(Usage(prompt_tokens=1, completion_tokens=0)) == Decimal("0.000000150")
    assert Rates(Decimal("0.0000005"), Decimal("0"), Decimal("0"), Decimal("0"), "t").cost_for(
        Usage(prompt_tokens=1000)
    ) == Decimal("0.000000001")


def test_package_prices_come_from_genai_prices():
    rates = pricing.rates_for("gpt-4o-mini", provider_kind="openai")
    assert (rates.input, rates.output, rates.cached_input) == (Decimal("0.15"), Decimal("0.6"), Decimal("0.075"))
    assert rates.source == "genai-prices"


def test_an_unknown_model_is_unpriced_not_free():
    assert pricing.rates_for("acme-secret-model-9000", provider_kind="openai") is None


def test_a_global_override_wins_over_the_package_and_a_tenant_override_over_both(alice, charlie):
    PriceOverride.objects.create(
        model="gpt-4o-mini",
        input_usd_per_mtok=Decimal("1"),
        output_usd_per_mtok=Decimal("2"),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    PriceOverride.objects.create(
        model="gpt-4o-mini",
        tenant=alice.tenant,
        input_usd_per_mtok=Decimal("0.5"),
        output_usd_per_mtok=Decimal("1"),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert pricing.rates_for("gpt-4o-mini", tenant_id=alice.tenant.pk).input == Decimal("0.5")
    global_rates = pricing.rates_for("gpt-4o-mini", tenant_id=charlie.tenant.pk)
    assert (global_rates.input, global_rates.source) == (Decimal("1"), "override")
    assert global_rates.cached_input == Decimal("1"), "no cached price given: the input price applies"


def test_overrides_apply_from_their_effective_date():
    PriceOverride.objects.create(
        model="my-model",
        input_usd_per_mtok=Decimal("1"),
        output_usd_per_mtok=Decimal("1"),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    PriceOverride.objects.create(
        model="my-model",
        input_usd_per_mtok=Decimal("2"),
        output_usd_per_mtok=Decimal("2"),
        effective_from=datetime(2026, 6, 1, tzinfo=UTC),
    )
    assert pricing.rates_for("my-model", at=datetime(2025, 12, 31, tzinfo=UTC)) is None
    assert pricing.rates_for("my-model", at=datetime(2026, 3, 1, tzinfo=UTC)).input == Decimal("1")
    assert pricing.rates_for("my-model", at=datetime(2026, 7, 1, tzinfo=UTC)).input == Decimal("2")


def test_price_history_is_read_at_the_request_time():
    # genai-prices records OpenAI's o3 price cut of 10 June 2025: a request is priced on its own day.
    before = pricing.rates_for("o3", provider_kind="openai", at=datetime(2025, 6, 1, tzinfo=UTC))
    after = pricing.rates_for("o3", provider_kind="openai", at=datetime(2025, 6, 11, tzinfo=UTC))
    assert (before.input, before.output) == (Decimal("10"), Decimal("40"))
    assert (after.input, after.output) == (Decimal("2"), Decimal("8"))


def test_tiered_prices_pick_the_tier_of_the_request_size():
    from genai_prices.types import Tier, TieredPrices

    tiered = TieredPrices(base=Decimal("1.25"), tiers=[Tier(start=200_000, price=Decimal("2.50"))])
    assert pricing._flat(tiered, 1_000) == Decimal("1.25")
    assert pricing._flat(tiered, 250_000) == Decimal("2.50")


def test_worst_case_cost_prices_every_prompt_token_as_uncached():
    rates = Rates(Decimal("1"), Decimal("4"), Decimal("0.1"), Decimal("1"), "t")
    assert rates.worst_case_cost(prompt_tokens=1_000_000, max_completion_tokens=500_000) == Decimal("3")
