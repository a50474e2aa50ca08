"""Invoiced revenue: entries from the billing system (API, CSV, Stripe), kept idempotent, and the
revenue of a date range read from them.

An entry covers a service period (inclusive days) and is spread evenly over it, so a month's
invoice is that month's revenue and a range of days gets its share; a credit note or refund is a
negative entry. `revenue_entry_upsert` is the one way in: the same (source, external id) again
changes nothing, different values replace the entry and keep what it had in its history.
"""

from __future__ import annotations

import calendar
import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from .models import RevenueEntry, Tenant
from .services import _jsonable

Q9 = Decimal("0.000000001")
CREATED, UNCHANGED, REPLACED = "created", "unchanged", "replaced"
_COMPARED = ("tenant_id", "period_start", "period_end", "amount_usd", "currency", "description")


class RevenueError(ValueError):
    """An entry that cannot be taken, with the reason."""


@dataclass(frozen=True)
class RevenueInput:
    tenant: Tenant
    source: str
    external_id: str
    period_start: date
    period_end: date
    amount_usd: Decimal
    currency: str = "USD"
    description: str = ""

    def check(self) -> None:
        if self.currency.upper() != "USD":
            raise RevenueError(f"currency {self.currency!r}: only USD is taken (convert before importing)")
        if self.period_end < self.period_start:
            raise RevenueError(f"period ends ({self.period_end}) before it starts ({self.period_start})")
        if not self.source.strip() or not self.external_id.strip():
            raise RevenueError("source and external id are both required")
        if self.amount_usd != self.amount_usd.quantize(Decimal("0.01")):
            raise RevenueError(f"amount {self.amount_usd} has more than cents")


def revenue_entry_upsert(item: RevenueInput, *, actor: str = "") -> tuple[RevenueEntry, str]:
    """Create, keep or replace the entry for (source, external id); returns it and what happened."""
    item.check()
    values = {
        "tenant_id": item.tenant.pk,
        "period_start": item.period_start,
        "period_end": item.period_end,
        "amount_usd": item.amount_usd,
        "currency": item.currency.upper(),
        "description": item.description[:500],
    }
    with transaction.atomic():
        entry, created = RevenueEntry.objects.select_for_update().get_or_create(
            source=item.source, external_id=item.external_id, defaults=values
        )
        if created:
            return entry, CREATED
        if all(getattr(entry, name) == values[name] for name in _COMPARED):
            return entry, UNCHANGED
        earlier = {name: _jsonable(getattr(entry, name)) for name in _COMPARED}
        entry.history = [*entry.history, {**earlier, "replaced_at": timezone.now().isoformat(), "by": actor}]
        for name, value in values.items():
            setattr(entry, name, value)
        entry.save()
        return entry, REPLACED


def invoiced_revenue(start: date, end: date, tenant_ids=None) -> dict[int, Decimal]:
    """Each tenant's share of its entries' amounts over the days [start, end]."""
    entries = RevenueEntry.objects.filter(period_start__lte=end, period_end__gte=start)
    if tenant_ids is not None:
        entries = entries.filter(tenant_id__in=list(tenant_ids))
    totals: dict[int, Decimal] = {}
    for tenant_id, first, last, amount in entries.values_list("tenant_id", "period_start", "period_end", "amount_usd"):
        covered = (min(last, end) - max(first, start)).days + 1
        share = (amount * covered / ((last - first).days + 1)).quantize(Q9, rounding=ROUND_HALF_UP)
        totals[tenant_id] = totals.get(tenant_id, Decimal("0")) + share
    return totals


@dataclass
class ImportResult:
    """What an import did (or, in a dry run, would do): counts by outcome, and the rows refused."""

    created: int = 0
    unchanged: int = 0
    replaced: int = 0
    errors: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def __str__(self) -> str:
        return f"{self.created} created, {self.replaced} replaced, {self.unchanged} unchanged"


class _DryRun(Exception):
    pass


def revenue_entries_import(
    items: Iterable[RevenueInput],
    *,
    dry_run: bool = False,
    actor: str = "",
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Upsert every item in one transaction: all of them land, or (dry run, or an error) none."""
    result = ImportResult()
    try:
        with transaction.atomic():
            for done, item in enumerate(items, start=1):
                result.count(revenue_entry_upsert(item, actor=actor)[1])
                if progress:
                    progress(done)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return result


CSV_COLUMNS = "tenant, external_id, amount_usd, and period (YYYY-MM) or period_start[, period_end]"


def revenue_rows_from_csv(lines: Iterable[str], *, source: str) -> tuple[list[RevenueInput], list[str]]:
    """Read a billing export: one entry a row, columns `tenant` (external id or numeric id),
    `external_id` (the invoice id), `amount_usd` (or `amount`), `period` (YYYY-MM) or
    `period_start` [+ `period_end`, default the same day], and optional `currency`,
    `description`, `source` (default: the given one). Returns the entries and, for each refused
    row, "line N: why" (line 1 is the header)."""
    reader = csv.DictReader(lines)
    header = {name.strip().lower() for name in reader.fieldnames or []}
    missing = [name for name in ("tenant", "external_id") if name not in header]
    if not header & {"amount_usd", "amount"}:
        missing.append("amount_usd")
    if not header & {"period", "period_start"}:
        missing.append("period or period_start")
    if missing:
        return [], [f"line 1: missing column(s) {', '.join(missing)}; expected {CSV_COLUMNS}"]
    tenants = {}
    for tenant in Tenant.objects.all():
        tenants[tenant.external_id] = tenant
        tenants.setdefault(str(tenant.pk), tenant)
    items, errors = [], []
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        try:
            tenant = tenants.get(row["tenant"])
            if tenant is None:
                raise RevenueError(f"no tenant {row['tenant']!r} (give its external id or id)")
            start, end = _period(row)
            item = RevenueInput(
                tenant=tenant,
                source=row.get("source") or source,
                external_id=row["external_id"],
                period_start=start,
                period_end=end,
                amount_usd=_amount(row.get("amount_usd") or row.get("amount", "")),
                currency=row.get("currency") or "USD",
                description=row.get("description", ""),
            )
            item.check()
        except RevenueError as error:
            errors.append(f"line {line}: {error}")
            continue
        items.append(item)
    return items, errors


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text.replace(",", "").replace("$", ""))
    except InvalidOperation:
        raise RevenueError(f"amount {text!r} is not a number") from None
    if not value.is_finite():
        raise RevenueError(f"amount {text!r} is not a number")
    return value


def _period(row: dict) -> tuple[date, date]:
    try:
        if row.get("period"):
            year, month = (int(part) for part in row["period"].split("-"))
            return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
        start = date.fromisoformat(row["period_start"])
        return start, date.fromisoformat(row.get("period_end") or row["period_start"])
    except (ValueError, KeyError):
        raise RevenueError("period must be YYYY-MM, period_start and period_end YYYY-MM-DD") from None
