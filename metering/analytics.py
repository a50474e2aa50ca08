"""The optional analytics sink: with CLICKHOUSE_URL set, every ledger row is also written to
ClickHouse, and with SPENDPLANE_ANALYTICS_READS the usage sums behind the margins and dashboards
are read from it (a column store sums a year of rows in the time PostgreSQL takes for a month).

- Nothing happens on the request path. The ledger write puts each new row's id in an outbox
  table in the same statement, so a row is in the outbox exactly when it is in the ledger and not
  yet in ClickHouse. `analytics_ship` (a Celery beat job every 10 s, and `manage.py ship_analytics`)
  sends outbox rows to ClickHouse a batch at a time and deletes them only once ClickHouse
  acknowledged the insert. During a ClickHouse outage the rows wait in the outbox.
- Each row goes to ClickHouse once. A shipment is named in the outbox (committed) before its
  insert, and its rows carry the name into ClickHouse. A shipment whose outcome is unknown (the
  insert failed, or ClickHouse took it and the delete did not commit) is looked up there by
  name on the next run: found, its outbox rows go; not found, they are sent again. One insert
  is one block, which ClickHouse writes whole or not at all. So reads need no FINAL (which cost
  20 times the plain read on 10M rows, bench/README.md). One shipper runs at a time.
- Reads are exact to the moment. The outbox is read first (its rows are summed by PostgreSQL),
  then ClickHouse sums everything else, leaving out those request ids: a row shipped in between is
  counted once, and a row shipped before is in ClickHouse because its delete followed the insert.

The client is clickhouse-driver (the native protocol). ClickHouse's own clickhouse-connect cannot
open a session with the server Debian packages (18.16): it reads a `readonly` settings column that
server does not have. The schema below keeps to what 18.16 understands.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlparse

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Subquery

from .models import AnalyticsOutbox, UsageEvent

logger = logging.getLogger("spendplane.analytics")
TABLE = "ledger"
SHIP_BATCH = 10_000
# Beyond this many rows waiting (ClickHouse down for a while), reads go back to PostgreSQL: the
# ids left out of the ClickHouse query travel in the query text, which may then pass ClickHouse's
# default 256 KiB limit (raised for that query).
READ_OUTBOX_LIMIT = 20_000
_READ_SETTINGS = {"max_query_size": 16 * 1024 * 1024}

_COLUMNS = [
    ("ledger_id", "UInt64"),
    ("request_id", "String"),
    ("tenant_id", "UInt64"),
    ("api_key_id", "UInt64"),
    ("end_user", "String"),
    ("feature", "String"),
    ("endpoint", "String"),
    ("model", "String"),
    ("provider", "String"),
    ("upstream_model", "String"),
    ("stream", "UInt8"),
    ("prompt_tokens", "UInt32"),
    ("cached_tokens", "UInt32"),
    ("cache_write_tokens", "UInt32"),
    ("completion_tokens", "UInt32"),
    ("reasoning_tokens", "UInt32"),
    ("usage_source", "String"),
    ("priced", "UInt8"),
    ("cost_usd", "Decimal(18, 9)"),
    ("status_code", "UInt16"),
    ("error_type", "String"),
    ("latency_ms", "Decimal(12, 3)"),
    ("upstream_attempts", "UInt16"),
    ("ttft_ms", "Nullable(Decimal(12, 3))"),
    ("created_at", "DateTime('UTC')"),
    ("recorded_at", "DateTime('UTC')"),
    ("batch", "String"),
]
GROUPABLE = ("model", "feature", "end_user")


class AnalyticsUnavailable(RuntimeError):
    """ClickHouse could not be reached or refused the statement."""


def analytics_enabled() -> bool:
    return bool(settings.CLICKHOUSE_URL)


def analytics_reads() -> bool:
    return analytics_enabled() and settings.SPENDPLANE_ANALYTICS_READS


_local = threading.local()


def _client(database: str | None = None):
    """This thread's client (clickhouse-driver clients are not thread-safe), for the URL's
    database or another one (DDL runs in `default`, where the URL's may not exist yet)."""
    from clickhouse_driver import Client

    parsed = urlparse(settings.CLICKHOUSE_URL)
    if database:
        parsed = parsed._replace(path=f"/{database}")
    query = "&".join(filter(None, [parsed.query, "connect_timeout=3", "send_receive_timeout=30"]))
    url = parsed._replace(query=query).geturl()
    clients = _local.__dict__.setdefault("clients", {})
    if url not in clients:
        clients[url] = Client.from_url(url)
    return clients[url]


def _execute(sql: str, params=None, *, database: str | None = None, query_settings: dict | None = None):
    from clickhouse_driver.errors import Error as ClickHouseError

    client = _client(database)
    try:
        return client.execute(sql, params, settings=query_settings)
    except (ClickHouseError, OSError, EOFError) as exc:
        client.disconnect()
        raise AnalyticsUnavailable(f"ClickHouse: {exc.__class__.__name__}: {exc}") from exc


def _database() -> str:
    return urlparse(settings.CLICKHOUSE_URL).path.lstrip("/") or "default"


def analytics_schema_ensure() -> None:
    """Create the database and the ledger table if missing (idempotent)."""
    database = _database()
    _execute(f"CREATE DATABASE IF NOT EXISTS {database}", database="default")
    columns = ", ".join(f"{name} {kind}" for name, kind in _COLUMNS)
    _execute(
        f"CREATE TABLE IF NOT EXISTS {database}.{TABLE} ({columns}) ENGINE = MergeTree() "
        "PARTITION BY toYYYYMM(created_at) ORDER BY (tenant_id, created_at, request_id)",
        database="default",
    )


def _utc_naive(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC).replace(tzinfo=None) if value is not None else None


# The ledger's attribute for each ClickHouse column but the shipment's name, in order (ledger_id
# is the row's id).
_SOURCES = ["id" if name == "ledger_id" else name for name, _ in _COLUMNS[:-1]]
_ZERO_IF_NONE = {"tenant_id", "api_key_id", "cost_usd"}
_AS_INT = {"stream", "priced"}
_TIMES = {"created_at", "recorded_at"}


def _as_row(values: Sequence, batch: str) -> tuple:
    """A ledger row (values in `_SOURCES` order) as ClickHouse takes it: no NULL ids or cost (0
    with `priced` = 0 says unpriced), flags as 0/1, times as naive UTC, then the shipment's name."""
    out = []
    for name, value in zip(_SOURCES, values, strict=True):
        if name in _ZERO_IF_NONE and value is None:
            value = 0
        elif name in _AS_INT:
            value = int(value)
        elif name in _TIMES:
            value = _utc_naive(value)
        out.append(value)
    return (*out, batch)


def _insert(rows: Sequence[Sequence], batch: str) -> None:
    """Insert ledger rows, given as value tuples in `_SOURCES` order, in one block."""
    if rows:
        names = ", ".join(name for name, _ in _COLUMNS)
        _execute(
            f"INSERT INTO {_database()}.{TABLE} ({names}) VALUES",
            [_as_row(r, batch) for r in rows],
        )


def _arrived(batch: str) -> bool:
    rows = _execute(f"SELECT count() FROM {_database()}.{TABLE} WHERE batch = %(batch)s", {"batch": batch})  # noqa: S608
    return rows[0][0] > 0


# One shipper at a time (PostgreSQL advisory lock): a shipment in flight must not be taken for a
# lost one by another shipper looking it up.
_SHIPPER_LOCK = 0x5350_4C41_4E45  # "SPLANE"


@contextmanager
def _shipper_lock():
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_SHIPPER_LOCK])
        held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_SHIPPER_LOCK])


def _settle_unknown_shipments() -> int:
    """Shipments left named in the outbox by a run that failed: drop their rows from the outbox
    where ClickHouse has them, free them for sending again where it has not."""
    settled = 0
    for batch in AnalyticsOutbox.objects.exclude(batch="").values_list("batch", flat=True).distinct():
        waiting = AnalyticsOutbox.objects.filter(batch=batch)
        if _arrived(batch):
            settled += waiting.delete()[0]
        else:
            waiting.update(batch="")
    return settled


@dataclass(frozen=True)
class ShipResult:
    shipped: int
    batches: int
    waiting: int


def analytics_ship(*, batch: int = SHIP_BATCH, budget_seconds: float = 8.0, progress=None) -> ShipResult:
    """Send outbox rows to ClickHouse a batch at a time until the outbox is empty or the time
    budget is spent. Raises AnalyticsUnavailable on failure; the rows stay in the outbox."""
    analytics_schema_ensure()
    started, shipped, batches = time.monotonic(), 0, 0
    with _shipper_lock() as held:
        if not held:
            return ShipResult(shipped=0, batches=0, waiting=AnalyticsOutbox.objects.count())
        _settle_unknown_shipments()
        while time.monotonic() - started < budget_seconds:
            name = uuid.uuid4().hex
            with transaction.atomic():
                ids = list(
                    AnalyticsOutbox.objects.filter(batch="")
                    .order_by("event_id")
                    .values_list("event_id", flat=True)[:batch]
                )
                if not ids:
                    break
                AnalyticsOutbox.objects.filter(event_id__in=ids).update(batch=name)
            # A row retention dropped before it was shipped has nothing left to send.
            events = list(UsageEvent.objects.filter(id__in=ids).values_list(*_SOURCES))
            _insert(events, name)
            AnalyticsOutbox.objects.filter(batch=name).delete()
            shipped += len(events)
            batches += 1
            if progress:
                progress(f"  shipped {shipped:,} rows in {batches} batch(es)")
    return ShipResult(shipped=shipped, batches=batches, waiting=AnalyticsOutbox.objects.count())


def analytics_backfill(*, chunk: int = 50_000, progress: Callable[[str], None] | None = None) -> int:
    """Send the ledger rows ClickHouse does not have and the outbox will not send (those written
    before the sink was on); a second run sends nothing. Returns rows sent."""
    analytics_schema_ensure()
    with _shipper_lock() as held:
        if not held:
            raise AnalyticsUnavailable("a shipment is running; try again when it is done")
        _settle_unknown_shipments()
        total, sent, last_id = UsageEvent.objects.count(), 0, 0
        while True:
            events = list(UsageEvent.objects.filter(id__gt=last_id).order_by("id").values_list(*_SOURCES)[:chunk])
            if not events:
                return sent
            first, last_id = events[0][0], events[-1][0]
            held_ids = {
                row[0]
                for row in _execute(
                    f"SELECT ledger_id FROM {_database()}.{TABLE} "  # noqa: S608 - names are ours
                    "WHERE ledger_id >= %(first)s AND ledger_id <= %(last)s",
                    {"first": first, "last": last_id},
                )
            }
            outboxed = set(
                AnalyticsOutbox.objects.filter(event_id__gte=first, event_id__lte=last_id).values_list(
                    "event_id", flat=True
                )
            )
            missing = [e for e in events if e[0] not in held_ids and e[0] not in outboxed]
            _insert(missing, "backfill")
            sent += len(missing)
            if progress:
                progress(f"  through ledger row {last_id:,}: {sent:,} of {total:,} rows sent")


def analytics_count(request_id_prefix: str = "") -> tuple[int, Decimal]:
    """Rows and total cost in ClickHouse, optionally of the request ids with one prefix."""
    prefix = request_id_prefix
    condition = "WHERE startsWith(request_id, %(prefix)s)" if prefix else ""
    rows = _execute(
        f"SELECT count(), sum(cost_usd) FROM {_database()}.{TABLE} {condition}",  # noqa: S608 - names are ours
        {"prefix": prefix or ""},
    )
    count, cost = rows[0]
    return int(count), Decimal(cost or 0)


def analytics_live_sums(windows, *, group_by: Sequence[str] = (), by_day: bool = False) -> list[dict]:
    """`live_usage.live_sums` from ClickHouse: every ledger row in the windows, summed per tenant
    (and per `group_by`, and per UTC day), the unshipped outbox rows summed by PostgreSQL."""
    from .live_usage import Q9, _any

    waiting = UsageEvent.objects.filter(
        _any(windows, "created_at"),
        tenant__isnull=False,
        id__in=Subquery(AnalyticsOutbox.objects.values("event_id")),
    ).values("request_id", "tenant_id", "created_at", "prompt_tokens", "completion_tokens", "cost_usd", *group_by)
    tail = list(waiting[: READ_OUTBOX_LIMIT + 1])
    if len(tail) > READ_OUTBOX_LIMIT:
        raise AnalyticsUnavailable(f"over {READ_OUTBOX_LIMIT} rows wait for ClickHouse")
    keys = ["tenant_id", *group_by, *(["toDate(created_at)"] if by_day else [])]
    params: dict = {"excluded": tuple(r["request_id"] for r in tail) or ("",)}
    conditions = []
    for index, window in enumerate(windows):
        params[f"low{index}"], params[f"high{index}"] = _utc_naive(window.low), _utc_naive(window.high)
        condition = f"(created_at >= %(low{index})s AND created_at < %(high{index})s"
        if window.tenant_ids is not None:
            params[f"tenants{index}"] = tuple(window.tenant_ids) or (0,)
            condition += f" AND tenant_id IN %(tenants{index})s"
        conditions.append(condition + ")")
    if not conditions:
        return []
    rows = _execute(
        f"SELECT {', '.join(keys)}, count(), sum(prompt_tokens), sum(completion_tokens), sum(cost_usd) "  # noqa: S608
        f"FROM {_database()}.{TABLE} WHERE tenant_id != 0 AND ({' OR '.join(conditions)}) "
        f"AND request_id NOT IN %(excluded)s GROUP BY {', '.join(keys)}",
        params,
        query_settings=_READ_SETTINGS,
    )
    sums: dict[tuple, list] = {}
    for row in rows:
        sums[tuple(row[: len(keys)])] = [int(row[-4]), int(row[-3]), int(row[-2]), Decimal(row[-1])]
    for r in tail:
        key = (
            r["tenant_id"],
            *(r[name] for name in group_by),
            *([r["created_at"].astimezone(UTC).date()] if by_day else []),
        )
        total = sums.setdefault(key, [0, 0, 0, Decimal(0)])
        total[0] += 1
        total[1] += r["prompt_tokens"]
        total[2] += r["completion_tokens"]
        total[3] += r["cost_usd"] or Decimal(0)
    out = []
    for key, (requests, prompt, completion, cost) in sums.items():
        item = {"tenant_id": key[0]}
        for index, name in enumerate(group_by, 1):
            item[name] = key[index]
        if by_day:
            item["day"] = key[-1]
        item.update(requests=requests, prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost.quantize(Q9))
        out.append(item)
    return out
