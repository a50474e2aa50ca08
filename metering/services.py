"""Writes to the ledger."""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from spendplane import fastjson

from .budgets import SPEND_SHARDS, budget_settle, hot_cursor, note_settled
from .models import AnalyticsOutbox, BudgetReservation, BudgetSpend, UsageEvent
from .pricing import Rates, Usage


@dataclass
class LedgerEntry:
    """Everything known about one proxied request when it ends."""

    request_id: str
    endpoint: str
    created_at: datetime
    status_code: int
    latency_ms: float
    tenant_id: int | None = None
    api_key_id: int | None = None
    end_user: str = ""
    feature: str = ""
    model: str = ""
    provider: str = ""
    upstream_model: str = ""
    stream: bool = False
    usage: Usage = field(default_factory=Usage)
    usage_source: str = UsageEvent.UsageSource.NONE
    rates: Rates | None = None
    error_type: str = ""
    upstream_latency_ms: float | None = None
    upstream_attempts: int = 0
    ttft_ms: float | None = None

    @property
    def cost_usd(self) -> Decimal | None:
        """The request's cost at its prices; None when the model is unpriced."""
        return self.rates.cost_for(self.usage) if self.rates is not None else None


def _ms(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(round(value, 3)))


def _event(entry: LedgerEntry) -> UsageEvent:
    return UsageEvent(**_row(entry))


def _row(entry: LedgerEntry) -> dict:
    """The ledger row's field values (by attribute name), as Python values."""
    usage, rates = entry.usage, entry.rates
    return {
        "request_id": entry.request_id,
        "tenant_id": entry.tenant_id,
        "api_key_id": entry.api_key_id,
        "end_user": entry.end_user[:200],
        "feature": entry.feature[:200],
        "endpoint": entry.endpoint,
        "model": entry.model[:200],
        "provider": entry.provider,
        "upstream_model": entry.upstream_model[:200],
        "stream": entry.stream,
        "prompt_tokens": usage.prompt_tokens,
        "cached_tokens": usage.cached_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "completion_tokens": usage.completion_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "usage_source": entry.usage_source,
        "priced": rates is not None,
        "cost_usd": entry.cost_usd,
        "input_usd_per_mtok": rates.input if rates else None,
        "output_usd_per_mtok": rates.output if rates else None,
        "cached_input_usd_per_mtok": rates.cached_input if rates else None,
        "cache_write_usd_per_mtok": rates.cache_write if rates else None,
        "price_source": rates.source if rates else "",
        "status_code": entry.status_code,
        "error_type": entry.error_type[:60],
        "latency_ms": _ms(entry.latency_ms),
        "upstream_latency_ms": _ms(entry.upstream_latency_ms),
        "upstream_attempts": entry.upstream_attempts,
        "ttft_ms": _ms(entry.ttft_ms),
        "created_at": entry.created_at,
    }


def usage_record(*, entry: LedgerEntry) -> bool:
    """Append one ledger row and settle the request's budget reservations to its cost, in one
    transaction. Idempotent on request_id: a second call for the same request writes nothing and
    returns False, so no path can double-count a request."""
    if connection.vendor == "postgresql":
        shard = zlib.crc32(entry.request_id.encode())
        return _record_on_postgresql([entry], shard=shard) == 1
    event = _event(entry)
    try:
        with transaction.atomic():
            event.save(force_insert=True)
            # The unique index is (request_id, created_at); the same request id under another
            # start time is refused here. The insert took SQLite's one write lock, so no other
            # writer can commit the same id between this check and this commit.
            if UsageEvent.objects.filter(request_id=entry.request_id).count() > 1:
                raise IntegrityError(f"request {entry.request_id} is already in the ledger")
            if settings.CLICKHOUSE_URL:
                AnalyticsOutbox.objects.create(event_id=event.id, event_created_at=event.created_at)
            budget_settle(request_id=entry.request_id, cost=event.cost_usd)
    except IntegrityError:
        if UsageEvent.objects.filter(request_id=entry.request_id).exists():
            return False
        raise
    return True


_record_fields = [f for f in UsageEvent._meta.concrete_fields if not f.primary_key]


# PostgreSQL, one request or many: every row, the release of their reservations and one settlement
# per counter (the sum of the costs of the rows this call inserted), in one statement (one round
# trip, one commit). Data-modifying CTEs all run against one snapshot; only the rows this call
# inserted release and settle anything, so a replayed row counts once.
# The rows travel as one JSON document that PostgreSQL unpacks into the ledger's row type: one
# parameter whatever the batch size, so the client renders no placeholders or arrays (measured:
# psycopg's array rendering was 6% of a worker's CPU under load).
# The ledger is partitioned by month of created_at, so its unique index is (request_id, created_at):
# the conflict clause catches a replay (same request, same start) racing the first write, and the
# NOT EXISTS a request_id that some partition already holds under another created_at.
_RECORD_SQL = """
WITH event AS (
    INSERT INTO {events} ({columns})
    SELECT {columns} FROM json_populate_recordset(NULL::{events}, %s::json) AS candidate
    WHERE NOT EXISTS (SELECT 1 FROM {events} AS held WHERE held.request_id = candidate.request_id)
    ON CONFLICT (request_id, created_at) DO NOTHING RETURNING id, created_at, request_id, cost_usd
){outbox}, released AS (
    DELETE FROM {reservations} r USING event WHERE r.request_id = event.request_id
    RETURNING r.counter_id, event.cost_usd
), settled AS (
    INSERT INTO {spends} (counter_id, shard, spent_usd)
    SELECT counter_id, %s, sum(cost_usd) FROM released GROUP BY counter_id HAVING sum(cost_usd) > 0
    ON CONFLICT (counter_id, shard) DO UPDATE SET spent_usd = {spends}.spent_usd + excluded.spent_usd
    RETURNING 1
)
SELECT (SELECT count(*) FROM event), (SELECT count(*) FROM settled)
"""


# With the analytics sink on, each new row's id also goes to its outbox, in the same statement.
_OUTBOX_SQL = """, outboxed AS (
    INSERT INTO {outbox} (event_id, event_created_at, batch) SELECT id, created_at, '' FROM event
)"""


@functools.cache
def _record_sql(outbox: bool) -> str:
    return _RECORD_SQL.format(
        outbox=_OUTBOX_SQL.format(outbox=AnalyticsOutbox._meta.db_table) if outbox else "",
        events=UsageEvent._meta.db_table,
        reservations=BudgetReservation._meta.db_table,
        spends=BudgetSpend._meta.db_table,
        columns=", ".join(connection.ops.quote_name(f.column) for f in _record_fields),
    )


def _json_value(value):
    # Decimals as their exact text and datetimes in ISO form: PostgreSQL casts both back exactly.
    return value.isoformat() if isinstance(value, datetime) else str(value)


def usage_record_many(entries: Sequence[LedgerEntry], *, shard: int = 0) -> int:
    """`usage_record` for many requests in one transaction (one statement on PostgreSQL); returns
    how many rows were new. Entries already in the ledger are skipped, as there."""
    unique = list({entry.request_id: entry for entry in entries}.values())
    if not unique:
        return 0
    if connection.vendor == "postgresql":
        return _record_on_postgresql(unique, shard=shard)
    with transaction.atomic():
        return sum(usage_record(entry=entry) for entry in unique)


def _record_on_postgresql(entries: Sequence[LedgerEntry], *, shard: int) -> int:
    recorded_at = timezone.now()
    columns = [(f.attname, f.column) for f in _record_fields]
    rows = []
    for entry in entries:
        values = {**_row(entry), "recorded_at": recorded_at}
        rows.append({column: values[attname] for attname, column in columns})
    payload = fastjson.dumps(rows, default=_json_value).decode()
    with hot_cursor() as cursor:
        cursor.execute(_record_sql(bool(settings.CLICKHOUSE_URL)), [payload, shard % SPEND_SHARDS])
        inserted, _settled = cursor.fetchone()
    note_settled(inserted)
    return inserted
