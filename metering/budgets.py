"""Spend budgets: which apply to a request, admission by reservation, and the counters behind them.

Counters live in the database next to the ledger. A reservation and the check against every
budget in scope happen in one transaction that locks the counters (in id order, so two requests
cannot deadlock); settlement happens in the ledger row's own transaction (`metering.services`).
So spend is exact across any number of processes, and nothing is lost when Redis restarts:
Redis never holds a budget.
"""

from __future__ import annotations

import logging
import threading
import zlib
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from tenants.models import EVERY_SUBJECT, Budget, Scope
from tenants.principal import BudgetSpec, Principal

from .models import BudgetCounter, BudgetReservation, BudgetSpend, UsageEvent

logger = logging.getLogger("spendplane.budgets")
ZERO = Decimal("0")


@dataclass(frozen=True)
class BudgetRule:
    """A budget in force for one request: the scope's subject resolved (`*` → this end user)."""

    scope: str
    subject: str
    period: str
    limit_usd: Decimal
    hard: bool

    @property
    def error_code(self) -> str:
        return f"{self.scope}_budget_exceeded"

    def describe(self) -> str:
        who = {
            "tenant": "this account",
            "end_user": f"end user '{self.subject}'",
            "feature": f"feature '{self.subject}'",
            "key": "this API key",
        }[self.scope]
        return f"the {'daily' if self.period == 'day' else 'monthly'} budget of {who} (${self.limit_usd})"


class BudgetExceeded(Exception):
    def __init__(self, rule: BudgetRule, remaining: Decimal) -> None:
        super().__init__(rule.describe())
        self.rule = rule
        self.remaining = remaining


@dataclass(frozen=True)
class Admission:
    """What a reservation returned: the smallest remaining amount across hard budgets, after it."""

    remaining_usd: Decimal | None
    reserved: bool


_recent_periods: dict[tuple[str, str], tuple[str, datetime, datetime]] = {}


def period_bounds(period: str, at: datetime, tz_name: str) -> tuple[str, datetime, datetime]:
    """(key, start, end) of the day or month containing `at` in the tenant's time zone, in UTC.
    The last answer per period and zone is kept: every request asks for the current one."""
    recent = _recent_periods.get((period, tz_name))
    if recent is not None and recent[1] <= at < recent[2]:
        return recent
    bounds = _period_bounds(period, at, tz_name)
    if len(_recent_periods) > 4096:
        _recent_periods.clear()
    _recent_periods[(period, tz_name)] = bounds
    return bounds


def _period_bounds(period: str, at: datetime, tz_name: str) -> tuple[str, datetime, datetime]:
    tz = zoneinfo.ZoneInfo(tz_name or "UTC")
    local = at.astimezone(tz)
    if period == Budget.Period.DAY:
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=1)).replace(hour=0)
        key = start.strftime("%Y-%m-%d")
    else:
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        key = start.strftime("%Y-%m")
    # Re-localise so a DST change inside the period gives the right UTC offset at each end.
    start = start.replace(tzinfo=None).replace(tzinfo=tz)
    end = end.replace(tzinfo=None).replace(tzinfo=tz)
    return key, start.astimezone(zoneinfo.ZoneInfo("UTC")), end.astimezone(zoneinfo.ZoneInfo("UTC"))


def _pick(specs: list[BudgetSpec], scope: str, subject: str) -> list[BudgetSpec]:
    """Specs for `subject` in `scope`, falling back to the `*` default per period."""
    own = [s for s in specs if s.scope == scope and s.subject == subject]
    periods = {s.period for s in own}
    defaults = [s for s in specs if s.scope == scope and s.subject == EVERY_SUBJECT and s.period not in periods]
    return own + defaults


def _scope_rules(principal: Principal, scope: str, subject: str, at: datetime) -> list[BudgetRule]:
    """The budgets of one scope and subject; for the tenant, the plan's month budget unless a
    tenant budget row replaces it."""
    specs = list(principal.budgets)
    if scope != Scope.TENANT:
        return [BudgetRule(scope, subject, s.period, s.limit_at(at), s.hard) for s in _pick(specs, scope, subject)]
    tenant_specs = [s for s in specs if s.scope == Scope.TENANT]
    rules = [BudgetRule(Scope.TENANT, "", s.period, s.limit_at(at), s.hard) for s in tenant_specs]
    if principal.monthly_budget_usd is not None and not any(s.period == "month" for s in tenant_specs):
        rules.append(BudgetRule(Scope.TENANT, "", "month", principal.monthly_budget_usd, True))
    return rules


def rules_for(principal: Principal, *, end_user: str, feature: str, at: datetime) -> list[BudgetRule]:
    """Every budget a request of this key, end user and feature counts against."""
    rules = _scope_rules(principal, Scope.TENANT, "", at)
    for scope, subject in ((Scope.END_USER, end_user), (Scope.FEATURE, feature), (Scope.KEY, str(principal.key_id))):
        if subject:
            rules += _scope_rules(principal, scope, subject, at)
    return rules


def rule_for_counter(principal: Principal, counter: BudgetCounter, at: datetime) -> BudgetRule | None:
    """The budget a counter counts for, as it stands now (None when it was removed)."""
    rules = _scope_rules(principal, counter.scope, counter.subject, at)
    return next((r for r in rules if r.period == counter.period), None)


def _ledger_filter(scope: str, subject: str) -> Q:
    if scope == Scope.END_USER:
        return Q(end_user=subject)
    if scope == Scope.FEATURE:
        return Q(feature=subject)
    if scope == Scope.KEY:
        return Q(api_key_id=int(subject))
    return Q()


def ledger_spend(tenant_id: int, scope: str, subject: str, start: datetime, end: datetime) -> Decimal:
    """The ledger's spend for one scope and window: what every counter must equal."""
    events = UsageEvent.objects.filter(
        _ledger_filter(scope, subject), tenant_id=tenant_id, created_at__gte=start, created_at__lt=end
    )
    return events.aggregate(total=Coalesce(Sum("cost_usd"), ZERO))["total"]


# Counter ids by identity: a counter row is never re-keyed, so its id can be remembered in process.
_counter_ids: dict[tuple, int] = {}
_COUNTER_IDS_MAX = 50_000


def _counter_id(tenant_id: int, rule: BudgetRule, tz_name: str, at: datetime) -> int:
    key = (tenant_id, rule.scope, rule.subject, rule.period, period_bounds(rule.period, at, tz_name)[0])
    counter_id = _counter_ids.get(key)
    if counter_id is None:
        counter_id = _counter_for(tenant_id, rule, tz_name, at).pk
        if len(_counter_ids) >= _COUNTER_IDS_MAX:
            _counter_ids.clear()
        _counter_ids[key] = counter_id
    return counter_id


def _counter_for(tenant_id: int, rule: BudgetRule, tz_name: str, at: datetime) -> BudgetCounter:
    """The counter for a rule's current period, created from the ledger when it is new."""
    key, start, end = period_bounds(rule.period, at, tz_name)
    lookup = {
        "tenant_id": tenant_id,
        "scope": rule.scope,
        "subject": rule.subject,
        "period": rule.period,
        "period_key": key,
    }
    counter = BudgetCounter.objects.filter(**lookup).first()
    if counter is None:
        spent = ledger_spend(tenant_id, rule.scope, rule.subject, start, end)
        BudgetCounter.objects.bulk_create(
            [BudgetCounter(**lookup, period_start=start, period_end=end, base_usd=spent)], ignore_conflicts=True
        )
        counter = BudgetCounter.objects.get(**lookup)
    return counter


def budget_reserve(
    *, principal: Principal, request_id: str, rules: list[BudgetRule], amount: Decimal, at: datetime | None = None
) -> Admission:
    """Reserve `amount` against every budget in `rules` at once, or raise BudgetExceeded naming the
    first hard budget it does not fit. Soft budgets are reserved against but never block."""
    if not rules:
        return Admission(remaining_usd=None, reserved=False)
    at = at or timezone.now()
    try:
        return _reserve_once(principal, request_id, rules, amount, at)
    except _StaleCounterIds:
        _counter_ids.clear()
        return _reserve_once(principal, request_id, rules, amount, at)


class _StaleCounterIds(Exception):
    """A remembered counter id no longer exists (its tenant was deleted, or a test flushed it)."""


def _reserve_once(principal: Principal, request_id: str, rules: list[BudgetRule], amount: Decimal, at) -> Admission:
    expires = at + timedelta(seconds=settings.SPENDPLANE_RESERVATION_SECONDS)
    if connection.vendor == "postgresql":
        return _reserve_in_one_call(principal, request_id, rules, amount, at, expires)
    with transaction.atomic():
        counter_ids = [_counter_id(principal.tenant_id, rule, principal.tenant_timezone, at) for rule in rules]
        ids = sorted(set(counter_ids))
        locked = list(BudgetCounter.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk"))
        if len(locked) != len(ids):
            raise _StaleCounterIds
        # A separate statement, on purpose: under READ COMMITTED a statement that waited for the lock
        # still reads other tables as of its start, so sums taken in the locking statement would miss
        # what the previous holder just committed (measured: overshoot in the e2e test).
        state = _spent_and_held(ids, at)
        remaining: Decimal | None = None
        for rule, counter_id in zip(rules, counter_ids, strict=True):
            spent, reserved = state[counter_id]
            available = rule.limit_usd - spent - reserved
            if rule.hard:
                if amount > available:
                    raise BudgetExceeded(rule, max(available, ZERO))
                left = available - amount
                remaining = left if remaining is None else min(remaining, left)
        BudgetReservation.objects.bulk_create(
            [
                BudgetReservation(request_id=request_id, counter_id=pk, amount_usd=amount, expires_at=expires)
                for pk in ids
            ],
            ignore_conflicts=True,
        )
    return Admission(remaining_usd=remaining, reserved=True)


def hot_cursor():
    """A server-binding cursor where the backend has one (`spendplane.postgresql`), else Django's."""
    return getattr(connection, "bound_cursor", connection.cursor)()


def borrowed_cursor():
    """For one autocommit statement: a cursor on a pooled connection borrowed just for it where the
    backend has one (`spendplane.postgresql`), else `hot_cursor()`."""
    borrow = getattr(connection, "borrowed_cursor", None)
    return borrow() if borrow is not None else hot_cursor()


def _array_literal(values) -> str:
    """A PostgreSQL array of integers or decimals (None is NULL), as text. psycopg's list dumper
    inspects every element in Python; a string goes as it is and the statement casts it."""
    return "{" + ",".join("NULL" if v is None else str(v) for v in values) + "}"


def _reserve_in_one_call(principal, request_id, rules, amount, at, expires) -> Admission:
    """The same admission in one round trip: the `spendplane_reserve` function (migration 0008)
    locks, sums in a fresh snapshot, checks every hard budget and inserts the reservations."""
    counter_ids = [_counter_id(principal.tenant_id, rule, principal.tenant_timezone, at) for rule in rules]
    limits = [rule.limit_usd if rule.hard else None for rule in rules]
    with borrowed_cursor() as cursor:
        cursor.execute(
            "SELECT ok, failed_rule, figure FROM spendplane_reserve(%s, %s::bigint[], %s::numeric[], %s, %s, %s)",
            [request_id, _array_literal(counter_ids), _array_literal(limits), amount, at, expires],
        )
        ok, failed_rule, figure = cursor.fetchone()
    if ok:
        return Admission(remaining_usd=None if figure is None else _decimal(figure), reserved=True)
    if failed_rule < 0:
        raise _StaleCounterIds
    raise BudgetExceeded(rules[failed_rule - 1], _decimal(figure))


_SPENT_AND_HELD = """
SELECT c.id, c.base_usd,
       COALESCE((SELECT SUM(s.spent_usd) FROM {spend} s WHERE s.counter_id = c.id), 0),
       COALESCE((SELECT SUM(r.amount_usd) FROM {reservation} r WHERE r.counter_id = c.id AND r.expires_at > %s), 0)
FROM {counter} c WHERE c.id IN ({ids})
"""


def _spent_and_held(ids: list[int], at: datetime) -> dict[int, tuple[Decimal, Decimal]]:
    """(spent, reserved) per counter, read in one statement."""
    sql = _SPENT_AND_HELD.format(
        spend=BudgetSpend._meta.db_table,
        reservation=BudgetReservation._meta.db_table,
        counter=BudgetCounter._meta.db_table,
        ids=", ".join(["%s"] * len(ids)),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [connection.ops.adapt_datetimefield_value(at), *ids])
        rows = cursor.fetchall()
    return {pk: (_decimal(base) + _decimal(spent), _decimal(held)) for pk, base, spent, held in rows}


def _decimal(value) -> Decimal:
    """SQLite returns sums of decimals as floats or strings; PostgreSQL as Decimal. 9 places."""
    return Decimal(str(value)).quantize(Decimal("0.000000001"))


SPEND_SHARDS = 8
_UPSERT_SPEND = (
    "INSERT INTO {spend} (counter_id, shard, spent_usd) VALUES {values} "
    "ON CONFLICT (counter_id, shard) DO UPDATE SET spent_usd = {spend}.spent_usd + excluded.spent_usd"
)


def budget_settle(*, request_id: str, cost: Decimal | None) -> None:
    """Turn a request's reservations into its actual cost. Call inside the ledger row's transaction.
    The cost goes to one shard per counter, picked by the request id."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {BudgetReservation._meta.db_table} WHERE request_id = %s RETURNING counter_id",  # noqa: S608
            [request_id],
        )
        counter_ids = sorted(row[0] for row in cursor.fetchall())
        if not counter_ids or not cost:
            return
        shard = zlib.crc32(request_id.encode()) % SPEND_SHARDS
        sql = _UPSERT_SPEND.format(
            spend=BudgetSpend._meta.db_table, values=", ".join(["(%s, %s, %s)"] * len(counter_ids))
        )
        params = []
        for counter_id in counter_ids:
            params += [counter_id, shard, connection.ops.adapt_decimalfield_value(cost, 18, 9)]
        cursor.execute(sql, params)


# Every request inserts and deletes its reservations, and updates a spend shard: dead row versions
# that each admission's sums step over until they are vacuumed (measured: 25,000 dead reservations
# made one admission's sum take 2 ms). Autovacuum, when it is on at all, wakes once a minute; so
# each process vacuums these two small tables itself after this many settlements.
VACUUM_EVERY_SETTLEMENTS = 1000
_settled_since_vacuum = 0
_vacuum_lock = threading.Lock()


def note_settled(count: int) -> None:
    """Count settlements written by this process; vacuum the reservation and spend tables when due.
    A VACUUM already running elsewhere is skipped, not waited for; a failure is only logged."""
    global _settled_since_vacuum
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    with _vacuum_lock:
        _settled_since_vacuum += count
        if _settled_since_vacuum < VACUUM_EVERY_SETTLEMENTS:
            return
        _settled_since_vacuum = 0
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (SKIP_LOCKED) {BudgetReservation._meta.db_table}, {BudgetSpend._meta.db_table}")
    except DatabaseError:
        logger.warning("vacuuming the budget tables failed", exc_info=True)


def budget_sweep(*, older_than: timedelta = timedelta(hours=1)) -> int:
    """Delete reservations that expired long ago (they already stopped counting); returns how many."""
    deleted, _ = BudgetReservation.objects.filter(expires_at__lt=timezone.now() - older_than).delete()
    return deleted


def budget_reset_period(*, tenant_id: int, scope: str, subject: str, period: str, tz_name: str) -> BudgetCounter:
    """Forgive the spend so far in the current period (support's 'reset a period')."""
    now = timezone.now()
    rule = BudgetRule(scope, subject, period, ZERO, True)
    with transaction.atomic():
        counter = _counter_for(tenant_id, rule, tz_name, now)
        BudgetCounter.objects.select_for_update().filter(pk=counter.pk).update(base_usd=ZERO, reset_at=now)
        BudgetSpend.objects.filter(counter_id=counter.pk).delete()
        counter.refresh_from_db()
    return counter


def budget_status(principal: Principal, *, at: datetime | None = None) -> list[dict]:
    """Spent, reserved and remaining for each tenant-level budget in its current period."""
    at = at or timezone.now()
    rows = []
    rules = rules_for(principal, end_user="", feature="", at=at)
    specs = [s for s in principal.budgets if s.scope != Scope.TENANT and s.subject != EVERY_SUBJECT]
    rules += [BudgetRule(s.scope, s.subject, s.period, s.limit_at(at), s.hard) for s in specs]
    for rule in rules:
        key, start, end = period_bounds(rule.period, at, principal.tenant_timezone)
        counter = BudgetCounter.objects.filter(
            tenant_id=principal.tenant_id, scope=rule.scope, subject=rule.subject, period=rule.period, period_key=key
        ).first()
        if counter:
            spent, reserved = _spent_and_held([counter.pk], at)[counter.pk]
        else:
            spent, reserved = ledger_spend(principal.tenant_id, rule.scope, rule.subject, start, end), ZERO
        rows.append(
            {
                "scope": rule.scope,
                "subject": rule.subject,
                "period": rule.period,
                "period_key": key,
                "period_start": start,
                "period_end": end,
                "hard": rule.hard,
                "limit_usd": rule.limit_usd,
                "spent_usd": spent,
                "reserved_usd": reserved,
                "remaining_usd": rule.limit_usd - spent - reserved,
            }
        )
    return rows


def budget_counter_drift(*, fix: bool = False) -> list[tuple[BudgetCounter, Decimal]]:
    """Counters whose spend differs from the ledger (after any reset), with the ledger's figure.
    With fix=True, each is set to the ledger's figure, under its row lock."""
    drifted = []
    for counter in BudgetCounter.objects.order_by("pk").iterator():
        start = max(counter.period_start, counter.reset_at) if counter.reset_at else counter.period_start
        with transaction.atomic():
            locked = BudgetCounter.objects.select_for_update().get(pk=counter.pk)
            expected = ledger_spend(locked.tenant_id, locked.scope, locked.subject, start, locked.period_end)
            if locked.spent() != expected:
                drifted.append((locked, expected))
                if fix:
                    BudgetSpend.objects.filter(counter_id=locked.pk).delete()
                    BudgetCounter.objects.filter(pk=locked.pk).update(base_usd=expected)
    return drifted
