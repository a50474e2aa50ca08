"""Invoiced revenue from Stripe: paid invoices and credit notes, matched to tenants, upserted as
`RevenueEntry` rows (source "stripe", the Stripe object id as external id).

Everything is fetched first and written in one transaction, so a failed page or a bad answer
writes nothing and the next run tries again; a re-run changes nothing (`revenue_entry_upsert`).

- A paid invoice's revenue is its total excluding tax (tax is not revenue), over its lines'
  service period: the earliest line start to the latest line end (Stripe's ends are exclusive
  instants, so the last day is the one before); an invoice with no lines uses its own period.
- A credit note is a negative entry over its invoice's service period (a void one is $0).
- A Stripe customer is the tenant whose `billing_customer_id` is its id, else whose
  `external_id` is; invoices of customers matching no tenant are counted, not imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import stripe
from django.conf import settings
from django.db.models import Q

from .models import RevenueEntry, Tenant
from .revenue import ImportResult, RevenueError, RevenueInput, revenue_entries_import

SOURCE = "stripe"
PAGE_SIZE = 100


class StripeSyncError(Exception):
    """Stripe could not be read (bad key, outage, malformed answer): nothing was written."""


@dataclass
class StripeSyncResult(ImportResult):
    invoices: int = 0
    credit_notes: int = 0
    unmatched_customers: set[str] = field(default_factory=set)

    def __str__(self) -> str:
        unmatched = len(self.unmatched_customers)
        return f"{self.invoices} paid invoice(s), {self.credit_notes} credit note(s): {super().__str__()}" + (
            f"; {unmatched} customer(s) match no tenant" if unmatched else ""
        )


def stripe_client(api_key: str | None = None, api_base: str | None = None) -> stripe.StripeClient:
    api_key = api_key or settings.STRIPE_API_KEY
    if not api_key:
        raise StripeSyncError("STRIPE_API_KEY is not set")
    base = api_base or settings.STRIPE_API_BASE
    return stripe.StripeClient(
        api_key, base_addresses={"api": base} if base else None, max_network_retries=settings.STRIPE_MAX_RETRIES
    )


def stripe_revenue_sync(
    *,
    client: stripe.StripeClient | None = None,
    since: datetime | None = None,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
) -> StripeSyncResult:
    """Import the paid invoices and credit notes created since `since` (default: 35 days ago,
    so late payments and corrections of last month are picked up again)."""
    client = client or stripe_client()
    since = since or datetime.now(UTC) - timedelta(days=35)
    say = progress or (lambda _: None)
    created = {"gte": int(since.timestamp())}
    result = StripeSyncResult()
    try:
        invoices = _fetch(client.v1.invoices, {"status": "paid", "created": created}, say, "invoices")
        notes = _fetch(client.v1.credit_notes, {"created": created}, say, "credit notes")
    except stripe.StripeError as error:
        raise StripeSyncError(
            f"Stripe answered {error.http_status or 'nothing'}: {error.user_message or error}"
        ) from None
    result.invoices, result.credit_notes = len(invoices), len(notes)

    tenants = _tenants_by_customer({str(o.get("customer") or "") for o in [*invoices, *notes]})
    periods = {
        entry.external_id: (entry.period_start, entry.period_end)
        for entry in RevenueEntry.objects.filter(
            source=SOURCE, external_id__in=[n["invoice"] for n in notes if n.get("invoice")]
        )
    }
    items = []
    for obj, kind in [*((i, "invoice") for i in invoices), *((n, "credit_note") for n in notes)]:
        customer = str(obj.get("customer") or "")
        tenant = tenants.get(customer)
        if tenant is None:
            result.unmatched_customers.add(customer)
            continue
        try:
            if kind == "invoice":
                item = _invoice_entry(obj, tenant)
                periods[item.external_id] = (item.period_start, item.period_end)
            else:
                item = _credit_note_entry(obj, tenant, periods)
            item.check()
        except (RevenueError, KeyError, TypeError, ValueError) as error:
            result.errors.append(f"{obj.get('id', '?')}: {error}")
            continue
        items.append(item)
    say(f"importing {len(items)} entr{'y' if len(items) == 1 else 'ies'}{' (dry run)' if dry_run else ''}")
    written = revenue_entries_import(items, dry_run=dry_run, actor="stripe sync")
    result.created, result.unchanged, result.replaced = written.created, written.unchanged, written.replaced
    return result


def _fetch(service, params: dict, say: Callable[[str], None], label: str) -> list[dict]:
    objects = []
    for obj in service.list(params={**params, "limit": PAGE_SIZE}).auto_paging_iter():
        objects.append(obj.to_dict() if hasattr(obj, "to_dict") else dict(obj))
        if len(objects) % PAGE_SIZE == 0:
            say(f"{label}: {len(objects)} read")
    say(f"{label}: {len(objects)} read")
    return objects


def _tenants_by_customer(customers: set[str]) -> dict[str, Tenant]:
    customers.discard("")
    found: dict[str, Tenant] = {}
    by_field = list(Tenant.objects.filter(Q(billing_customer_id__in=customers) | Q(external_id__in=customers)))
    for tenant in by_field:
        if tenant.external_id in customers:
            found.setdefault(tenant.external_id, tenant)
    for tenant in by_field:  # an explicit billing customer id wins over an external id that happens to match
        if tenant.billing_customer_id in customers:
            found[tenant.billing_customer_id] = tenant
    return found


def _day(timestamp: int) -> date:
    return datetime.fromtimestamp(timestamp, UTC).date()


def _service_period(invoice: dict) -> tuple[date, date]:
    periods = [line["period"] for line in (invoice.get("lines") or {}).get("data", []) if line.get("period")]
    start = min((p["start"] for p in periods), default=invoice.get("period_start"))
    end = max((p["end"] for p in periods), default=invoice.get("period_end"))
    if start is None or end is None:
        moment = _day(invoice["created"])
        return moment, moment
    # Stripe's period end is the instant the next period starts: the service ends the day before.
    last = _day(end - 1) if end > start else _day(start)
    return _day(start), last


def _dollars(cents: int) -> Decimal:
    return (Decimal(int(cents)) / 100).quantize(Decimal("0.01"))


def _usd(obj: dict) -> str:
    currency = str(obj.get("currency") or "").upper()
    if currency != "USD":
        raise RevenueError(f"currency {currency or '(none)'}: only USD is imported")
    return currency


def _invoice_entry(invoice: dict, tenant: Tenant) -> RevenueInput:
    start, end = _service_period(invoice)
    total = invoice.get("total_excluding_tax")
    return RevenueInput(
        tenant=tenant,
        source=SOURCE,
        external_id=invoice["id"],
        period_start=start,
        period_end=end,
        amount_usd=_dollars(invoice["total"] if total is None else total),
        currency=_usd(invoice),
        description=f"Stripe invoice {invoice.get('number') or invoice['id']}",
    )


def _credit_note_entry(note: dict, tenant: Tenant, periods: dict[str, tuple[date, date]]) -> RevenueInput:
    start, end = periods.get(note.get("invoice") or "", (_day(note["created"]), _day(note["created"])))
    voided = note.get("status") == "void"
    total = note.get("total_excluding_tax")
    amount = Decimal("0.00") if voided else -_dollars(note["total"] if total is None else total)
    return RevenueInput(
        tenant=tenant,
        source=SOURCE,
        external_id=note["id"],
        period_start=start,
        period_end=end,
        amount_usd=amount,
        currency=_usd(note),
        description=f"Stripe credit note {note.get('number') or note['id']}"
        + (f" on {note['invoice']}" if note.get("invoice") else "")
        + (" (void)" if voided else ""),
    )
