"""The ledger against each provider's own report, per provider, UTC day and model.

Model names are compared as the provider bills them: a ledger row's model goes through the route
table to the upstream model its provider was sent, and both sides drop a date snapshot or
`-latest` suffix (`gpt-4o-mini-2024-07-18` and `gpt-4o-mini` are one model).

Ledger figures count rows with provider-reported usage. Rows whose usage was estimated (a cut
stream, an abandoned request: the provider billed them, the gateway counted them with tiktoken)
are counted apart and added to the ledger side, and may explain a difference up to their own size.

Status, per row:
- `missing_in_ledger`: the provider billed a model the gateway never carried that day;
- `missing_at_provider`: the gateway recorded usage the provider's report does not have;
- `match`: requests, input and output tokens within the tolerance, and cost where the provider
  reports it (within the tolerance or a cent);
- `drift`: anything else, with what differs in `detail`.

The tolerance (`SPENDPLANE_RECONCILE_TOLERANCE_PCT`, 0.5%) is what a gateway that sees every
request can differ by: tokens are counted by the provider on both sides, so gateway-only traffic
differs only by requests straddling UTC midnight (the gateway stamps a request when it starts,
the provider when it finishes: seconds of a day) and by estimated rows (allowed for apart). A key
used elsewhere for even 1% of a day's tokens, a provider counting tokens differently, or a price
that is off by more than half a percent shows as drift.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Sum

from .alerts import alert_transition
from .margins import day_bounds
from .models import AlertEvent, ProviderUsage, Reconciliation, UsageEvent, UsageImport
from .provider_usage import ProviderUsageError, csv_report, provider_usage_import, report_store, usage_sources
from .routing import upstreams_for

_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")
NOT_BILLED = ("messages.count_tokens",)
CAPTURE = Decimal("0.000001")
CENT = Decimal("0.01")
_FIGURES = ("requests", "input_tokens", "cached_tokens", "cache_write_tokens", "output_tokens")


def model_key(name: str) -> str:
    """The name a provider bills a model under, without its date snapshot or `-latest`."""
    return _SNAPSHOT.sub("", name.strip().lower())


@dataclass
class Side:
    requests: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    models: set[str] = field(default_factory=set)

    def add(self, row: dict) -> None:
        self.requests += row["requests"]
        self.input_tokens += row["input_tokens"] or 0
        self.cached_tokens += row["cached_tokens"] or 0
        self.cache_write_tokens += row["cache_write_tokens"] or 0
        self.output_tokens += row["output_tokens"] or 0
        self.cost_usd += row["cost_usd"] or Decimal(0)
        self.models.add(row["model"])


def _upstream_model(provider: str, model: str) -> str:
    for upstream in upstreams_for(model):
        if upstream.name == provider:
            return upstream.upstream_model or model
    return model


def ledger_sides(provider: str, day: date) -> tuple[dict[str, Side], dict[str, Side]]:
    """(provider-reported, estimated) ledger figures of the provider's day, by billed model."""
    low, high = day_bounds(day, day)
    rows = (
        UsageEvent.objects.filter(provider=provider, created_at__gte=low, created_at__lt=high)
        .exclude(endpoint__in=NOT_BILLED)
        .filter(usage_source__in=[UsageEvent.UsageSource.PROVIDER, UsageEvent.UsageSource.ESTIMATED])
        .values("model", "upstream_model", "usage_source")
        .annotate(
            requests=Count("id"),
            input_tokens=Sum("prompt_tokens"),
            cached_tokens=Sum("cached_tokens"),
            cache_write_tokens=Sum("cache_write_tokens"),
            output_tokens=Sum("completion_tokens"),
            cost_usd=Sum("cost_usd"),
        )
        .order_by()
    )
    reported: dict[str, Side] = {}
    estimated: dict[str, Side] = {}
    for row in rows:
        # The name the row was sent under; rows from before it was recorded go through today's routes.
        key = model_key(row["upstream_model"] or _upstream_model(provider, row["model"]))
        target = reported if row["usage_source"] == UsageEvent.UsageSource.PROVIDER else estimated
        target.setdefault(key, Side()).add(row)
    return reported, estimated


def _within(ledger: int | Decimal, provider: int | Decimal, slack: int | Decimal) -> bool:
    tolerance = Decimal(str(settings.SPENDPLANE_RECONCILE_TOLERANCE_PCT)) / 100
    return abs(Decimal(ledger) - Decimal(provider)) <= max(Decimal(provider) * tolerance, Decimal(slack))


def _percent(ledger, provider) -> str:
    if not provider:
        return "n/a"
    return f"{(Decimal(ledger) - Decimal(provider)) / Decimal(provider) * 100:+.2f}%"


def reconcile_row(provider: str, day: date, model: str, reported: Side, estimated: Side, billed) -> Reconciliation:
    ledger = {name: getattr(reported, name) + getattr(estimated, name) for name in _FIGURES}
    ledger_cost = reported.cost_usd + estimated.cost_usd
    row = Reconciliation(
        provider=provider,
        day=day,
        model=billed.model if billed else model,
        ledger_requests=reported.requests,
        ledger_input_tokens=reported.input_tokens,
        ledger_cached_tokens=reported.cached_tokens,
        ledger_cache_write_tokens=reported.cache_write_tokens,
        ledger_output_tokens=reported.output_tokens,
        ledger_cost_usd=reported.cost_usd,
        estimated_requests=estimated.requests,
        estimated_input_tokens=estimated.input_tokens,
        estimated_output_tokens=estimated.output_tokens,
        ledger_models=sorted(reported.models | estimated.models),
    )
    if billed is None:
        row.status = Reconciliation.Status.MISSING_AT_PROVIDER
        row.detail = f"{ledger['requests']} request(s) in the ledger, none in the provider's report"
        return row
    for name in _FIGURES[1:]:
        setattr(row, f"provider_{name}", getattr(billed, name))
    row.provider_requests = billed.requests
    row.provider_cost_usd = billed.cost_usd
    provider_tokens = billed.input_tokens + billed.output_tokens
    if provider_tokens:
        ledger_tokens = ledger["input_tokens"] + ledger["output_tokens"]
        row.capture_rate = (Decimal(ledger_tokens) / provider_tokens).quantize(CAPTURE, rounding=ROUND_HALF_UP)
    if not ledger["requests"]:
        row.status = Reconciliation.Status.MISSING_IN_LEDGER
        row.capture_rate = Decimal(0) if provider_tokens else None
        row.detail = f"the provider billed {provider_tokens} token(s) the gateway never carried"
        return row
    differences = []
    checks = [
        ("input tokens", ledger["input_tokens"], billed.input_tokens, estimated.input_tokens),
        ("output tokens", ledger["output_tokens"], billed.output_tokens, estimated.output_tokens),
    ]
    if billed.requests is not None:
        checks.insert(0, ("requests", ledger["requests"], billed.requests, 0))
    if billed.cost_usd is not None:
        checks.append(("cost", ledger_cost, billed.cost_usd, max(CENT, estimated.cost_usd)))
    for label, mine, theirs, slack in checks:
        if not _within(mine, theirs, slack):
            differences.append(f"{label}: ledger {mine} vs provider {theirs} ({_percent(mine, theirs)})")
    row.status = Reconciliation.Status.DRIFT if differences else Reconciliation.Status.MATCH
    row.detail = "; ".join(differences)[:500]
    return row


STORED_FIELDS = (
    "status",
    "ledger_requests",
    "provider_requests",
    "ledger_input_tokens",
    "provider_input_tokens",
    "ledger_cached_tokens",
    "provider_cached_tokens",
    "ledger_cache_write_tokens",
    "provider_cache_write_tokens",
    "ledger_output_tokens",
    "provider_output_tokens",
    "ledger_cost_usd",
    "provider_cost_usd",
    "estimated_requests",
    "estimated_input_tokens",
    "estimated_output_tokens",
    "capture_rate",
    "ledger_models",
    "detail",
)


def _same(stored: Reconciliation, fresh: Reconciliation) -> bool:
    for name in STORED_FIELDS:
        mine, theirs = getattr(stored, name), getattr(fresh, name)
        if isinstance(mine, Decimal) or isinstance(theirs, Decimal):
            if (mine is None) != (theirs is None) or (mine is not None and Decimal(mine) != Decimal(theirs)):
                return False
        elif mine != theirs:
            return False
    return True


def reconcile_provider_day(provider: str, day: date) -> list[Reconciliation]:
    """Recompute the provider's rows for the day from the ledger and its stored report. A row
    whose figures did not change is left as it was: a rerun changes nothing."""
    reported, estimated = ledger_sides(provider, day)
    billed: dict[str, ProviderUsage] = {}
    for usage in ProviderUsage.objects.filter(provider=provider, day=day):
        key = model_key(usage.model)
        if key in billed:  # two snapshots of one model billed the same day: one row
            kept = billed[key]
            for name in _FIGURES[1:]:
                setattr(kept, name, getattr(kept, name) + getattr(usage, name))
            if usage.requests is not None:
                kept.requests = (kept.requests or 0) + usage.requests
            if usage.cost_usd is not None:
                kept.cost_usd = (kept.cost_usd or Decimal(0)) + usage.cost_usd
        else:
            billed[key] = usage
    fresh = [
        reconcile_row(provider, day, key, reported.get(key, Side()), estimated.get(key, Side()), billed.get(key))
        for key in sorted(set(reported) | set(estimated) | set(billed))
    ]
    with transaction.atomic():
        stored = {r.model: r for r in Reconciliation.objects.select_for_update().filter(provider=provider, day=day)}
        kept = []
        for row in fresh:
            old = stored.pop(row.model, None)
            if old is not None and _same(old, row):
                kept.append(old)
                continue
            if old is not None:
                row.pk = old.pk
            row.save()
            kept.append(row)
        Reconciliation.objects.filter(pk__in=[r.pk for r in stored.values()]).delete()
    _alert(provider, day, kept)
    return kept


def _alert(provider: str, day: date, rows: list[Reconciliation]) -> None:
    """One alert per provider and day past the tolerance (drift, or traffic missing in the
    ledger), and its recovery once a later run finds it matching."""
    bad = [r for r in rows if r.status in (Reconciliation.Status.DRIFT, Reconciliation.Status.MISSING_IN_LEDGER)]
    key = f"reconciliation:{provider}:{day.isoformat()}"
    data = {"provider": provider, "day": day.isoformat(), "rows": [{"model": r.model, "status": r.status} for r in bad]}
    if bad:
        summary = ", ".join(f"{r.model} {r.status.replace('_', ' ')}" for r in bad[:5])
        message = f"{provider} bill for {day} does not match the ledger: {summary}"
        alert_transition(None, AlertEvent.Kind.RECONCILIATION, key, AlertEvent.State.FIRED, message, data)
    else:
        message = f"{provider} bill for {day} matches the ledger"
        alert_transition(None, AlertEvent.Kind.RECONCILIATION, key, AlertEvent.State.RECOVERED, message, data)


@dataclass
class ReconcileResult:
    rows: list[Reconciliation] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    providers: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts

    def summary(self) -> str:
        return ", ".join(f"{n} {status}" for status, n in sorted(self.counts().items())) or "nothing to reconcile"


def reconcile_usage(
    first: date,
    last: date | None = None,
    *,
    provider: str | None = None,
    fetch: bool = True,
    progress: Callable[[str], None] | None = None,
) -> ReconcileResult:
    """Import each provider's report for [first, last] (unless `fetch` is off), then reconcile
    every day. A provider whose report cannot be read keeps its previous rows; its error is in
    the result, and the other providers go on."""
    last = last or first
    say = progress or (lambda _: None)
    result = ReconcileResult()
    sources = [s for s in usage_sources() if provider in (None, s.name)]
    names = {s.name for s in sources}
    # providers whose figures came from a console export, with no API to read
    imported = ProviderUsage.objects.filter(day__gte=first, day__lte=last)
    if provider:
        imported = imported.filter(provider=provider)
    names |= set(imported.values_list("provider", flat=True).distinct())
    for source in sources if fetch else []:
        try:
            stored = provider_usage_import(source, first, last)
            say(f"{source.name}: {stored} report row(s) for {first}..{last}")
        except ProviderUsageError as error:
            result.errors[source.name] = str(error)
            say(f"{source.name}: {error}; previous rows kept")
    for name in sorted(names - set(result.errors)):
        result.providers.append(name)
        day = first
        while day <= last:
            rows = reconcile_provider_day(name, day)
            result.rows += rows
            counts = {}
            for row in rows:
                counts[row.status] = counts.get(row.status, 0) + 1
            say(f"{name} {day}: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no traffic"))
            day += timedelta(days=1)
    return result


@dataclass
class DaySummary:
    day: date
    provider: str
    rows: int = 0
    not_matching: int = 0
    ledger_tokens: int = 0
    provider_tokens: int = 0
    ledger_cost_usd: Decimal = Decimal(0)
    provider_cost_usd: Decimal | None = None

    @property
    def capture_rate(self) -> Decimal | None:
        if not self.provider_tokens:
            return None
        return (Decimal(self.ledger_tokens) / self.provider_tokens).quantize(CAPTURE, rounding=ROUND_HALF_UP)

    @property
    def capture_pct(self) -> Decimal | None:
        rate = self.capture_rate
        return None if rate is None else (rate * 100).quantize(CENT, rounding=ROUND_HALF_UP)


def reconciliation_overview(first: date, last: date, provider: str = "", status: str = "") -> dict:
    """What the finance page shows: each provider's days with their capture rate, the rows that do
    not match (or those of `status`), and the imports that failed since `first`."""
    rows = Reconciliation.objects.filter(day__gte=first, day__lte=last)
    if provider:
        rows = rows.filter(provider=provider)
    summaries: dict[tuple[date, str], DaySummary] = {}
    for row in rows.order_by("-day", "provider", "model"):
        summary = summaries.setdefault((row.day, row.provider), DaySummary(row.day, row.provider))
        summary.rows += 1
        summary.not_matching += row.status != Reconciliation.Status.MATCH
        summary.ledger_tokens += row.ledger_input_tokens + row.ledger_output_tokens
        summary.ledger_tokens += row.estimated_input_tokens + row.estimated_output_tokens
        summary.provider_tokens += row.provider_input_tokens + row.provider_output_tokens
        summary.ledger_cost_usd += row.ledger_cost_usd
        if row.provider_cost_usd is not None:
            summary.provider_cost_usd = (summary.provider_cost_usd or Decimal(0)) + row.provider_cost_usd
    listed = rows.filter(status=status) if status else rows.exclude(status=Reconciliation.Status.MATCH)
    failures = UsageImport.objects.filter(ok=False, last_day__gte=first)
    if provider:
        failures = failures.filter(provider=provider)
    return {
        "days": list(summaries.values()),
        "rows": list(listed.order_by("-day", "provider", "model")[:500]),
        "failures": list(failures[:20]),
        "providers": sorted(set(Reconciliation.objects.values_list("provider", flat=True).distinct())),
    }


def usage_export_import(provider: str, lines) -> tuple[int, date, date, ReconcileResult]:
    """A provider console's CSV export (`provider_usage.csv_report`): its days replace the
    provider's figures and are reconciled at once. Raises ProviderUsageError (nothing written)
    for a bad row, naming its line, or an empty file."""
    report = csv_report(lines)
    days = sorted({day for day, _ in report.figures})
    if not days:
        raise ProviderUsageError("the file has no rows")
    stored = report_store(provider, days[0], days[-1], report)
    return stored, days[0], days[-1], reconcile_usage(days[0], days[-1], provider=provider, fetch=False)
