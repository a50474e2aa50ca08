"""Spend alerts: evaluated from counters and rollups, each firing once per threshold and period,
with one recovery event; delivered by signed webhook and email.

Webhook signature (header `Spendplane-Signature: t=<unix seconds>,v1=<hex>`):
    v1 = HMAC-SHA256(key=endpoint secret, message=f"{t}.{raw request body}")
Verify by recomputing v1 over the raw body and comparing in constant time; reject old `t`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import statistics
import time
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from tenants.models import Tenant
from tenants.principal import Principal

from .budgets import rule_for_counter
from .models import AlertEvent, BudgetCounter, UsageEvent, UsageRollup

ZERO = Decimal("0")
DEFAULT_THRESHOLDS = (50, 80, 100)


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, body: bytes, header: str, tolerance_s: int = 300) -> bool:
    """The documented recipe, for receivers (and the tests)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=")[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def alert_transition(
    tenant_id: int | None, kind: str, key: str, state: str, message: str, data: dict
) -> AlertEvent | None:
    """Record a fire or a recovery once; a recovery only after a fire. Returns the new event."""
    if state == AlertEvent.State.RECOVERED:
        fired = AlertEvent.objects.filter(dedupe_key=key, state=AlertEvent.State.FIRED).exists()
        if not fired or AlertEvent.objects.filter(dedupe_key=key, state=state).exists():
            return None
    elif AlertEvent.objects.filter(dedupe_key=key, state=state).exists():
        return None
    try:
        with transaction.atomic():
            event = AlertEvent.objects.create(
                tenant_id=tenant_id, kind=kind, state=state, dedupe_key=key, message=message[:500], data=data
            )
    except IntegrityError:  # another evaluator recorded it first
        return None
    from .tasks import deliver_alert

    transaction.on_commit(lambda: deliver_alert.delay(event.pk))
    return event


def _money(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.000001")), "f")


def _budget_alerts(tenant: Tenant, now: datetime) -> list[AlertEvent]:
    events = []
    principal = Principal.for_tenant(tenant)
    counters = BudgetCounter.objects.filter(tenant=tenant, period_end__gt=now, period_start__lte=now)
    for counter in counters:
        rule = rule_for_counter(principal, counter, now)
        if rule is None or not rule.limit_usd:
            continue
        limit = rule.limit_usd
        spent = counter.spent()
        pct = spent / limit * 100
        who = f"{counter.scope} {counter.subject}".strip()
        for threshold in DEFAULT_THRESHOLDS:
            key = f"budget:{counter.pk}:{threshold}"
            data = {
                "scope": counter.scope,
                "subject": counter.subject,
                "period": counter.period_key,
                "threshold_pct": threshold,
                "spent_usd": _money(spent),
                "limit_usd": _money(limit),
            }
            if pct >= threshold:
                message = f"{tenant.name}: {who} budget at {pct:.0f}% (${_money(spent)} of ${_money(limit)})"
                events.append(alert_transition(tenant.pk, "budget_threshold", key, "fired", message, data))
            else:
                message = f"{tenant.name}: {who} budget back under {threshold}%"
                events.append(alert_transition(tenant.pk, "budget_threshold", key, "recovered", message, data))
        if counter.period == "month":
            start, end = counter.period_start, counter.period_end
            elapsed = (now - start) / (end - start)
            if elapsed >= 0.1:
                projected = spent / Decimal(str(elapsed))
                key = f"projection:{counter.pk}"
                data = {"projected_usd": _money(projected), "limit_usd": _money(limit), "period": counter.period_key}
                if projected > limit:
                    message = (
                        f"{tenant.name}: {who} on course for ${_money(projected)} against a ${_money(limit)} budget"
                    )
                    events.append(alert_transition(tenant.pk, "projected_overspend", key, "fired", message, data))
                else:
                    message = f"{tenant.name}: {who} projection back within budget"
                    events.append(alert_transition(tenant.pk, "projected_overspend", key, "recovered", message, data))
    return events


def _spike_alerts(tenant: Tenant, now: datetime) -> list[AlertEvent]:
    """The last complete hour against the median and MAD of the previous 7 days' hours."""
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    history_start = hour - timedelta(days=7)
    costs = dict(
        UsageRollup.objects.filter(
            granularity="hour", tenant=tenant, bucket_start__gte=history_start, bucket_start__lte=hour
        )
        .values("bucket_start")
        .annotate(cost=Coalesce(Sum("cost_usd"), ZERO))
        .values_list("bucket_start", "cost")
    )
    current = costs.pop(hour, ZERO)
    baseline = [costs.get(history_start + timedelta(hours=i), ZERO) for i in range(7 * 24)]
    median = statistics.median(baseline)
    mad = statistics.median([abs(c - median) for c in baseline])
    floor = Decimal(str(settings.SPENDPLANE_SPIKE_MIN_USD))
    threshold = median + 6 * max(mad, floor / 10)
    key = f"spike:{tenant.pk}:{hour:%Y-%m-%dT%H}"
    data = {
        "hour": hour.isoformat(),
        "cost_usd": _money(current),
        "baseline_median_usd": _money(median),
        "threshold_usd": _money(threshold),
    }
    if current >= floor and current > threshold:
        message = f"{tenant.name}: ${_money(current)} spent in the hour from {hour:%H:00} UTC (usual ${_money(median)})"
        return [alert_transition(tenant.pk, "spend_spike", key, "fired", message, data)]
    previous = f"spike:{tenant.pk}:{hour - timedelta(hours=1):%Y-%m-%dT%H}"
    return [
        alert_transition(tenant.pk, "spend_spike", previous, "recovered", f"{tenant.name}: spend back to normal", data)
    ]


def _dominance_alerts(tenant: Tenant, now: datetime) -> list[AlertEvent]:
    """One end user taking most of the tenant's spend today (UTC)."""
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rows = list(
        UsageEvent.objects.filter(tenant=tenant, created_at__gte=start)
        .exclude(end_user="")
        .values("end_user")
        .annotate(cost=Coalesce(Sum("cost_usd"), ZERO))
        .order_by("-cost")[:1]
    )
    total = UsageEvent.objects.filter(tenant=tenant, created_at__gte=start).aggregate(
        t=Coalesce(Sum("cost_usd"), ZERO)
    )["t"]
    if not rows or not total:
        return []
    top = rows[0]
    share = top["cost"] / total
    key = f"dominance:{tenant.pk}:{start:%Y-%m-%d}:{top['end_user']}"
    data = {"end_user": top["end_user"], "share_pct": f"{share * 100:.1f}", "cost_usd": _money(top["cost"])}
    if total >= Decimal(str(settings.SPENDPLANE_SPIKE_MIN_USD)) and share >= Decimal("0.8"):
        message = f"{tenant.name}: end user '{top['end_user']}' made {share * 100:.0f}% of today's spend"
        return [alert_transition(tenant.pk, "user_dominance", key, "fired", message, data)]
    if share < Decimal("0.6"):
        return [
            alert_transition(tenant.pk, "user_dominance", key, "recovered", f"{tenant.name}: spend spread out", data)
        ]
    return []


def _loop_alerts(tenant: Tenant, now: datetime) -> list[AlertEvent]:
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    key = f"loops:{tenant.pk}:{start:%Y-%m-%d}"
    loops = UsageEvent.objects.filter(tenant=tenant, created_at__gte=start, error_type="loop_detected")
    by_user = list(loops.values("end_user").annotate(n=Count("id")).order_by("-n")[:5])
    if by_user:
        data = {"throttled": {row["end_user"] or "(none)": row["n"] for row in by_user}}
        message = f"{tenant.name}: repeated identical prompts throttled ({sum(r['n'] for r in by_user)} today)"
        return [alert_transition(tenant.pk, "repeated_prompts", key, "fired", message, data)]
    return []


def evaluate_alerts(*, now: datetime | None = None) -> list[AlertEvent]:
    """Evaluate every alert for every active tenant; returns the new events."""
    now = now or timezone.now()
    events: list[AlertEvent | None] = []
    for tenant in Tenant.objects.select_related("plan").filter(status=Tenant.Status.ACTIVE):
        events += _budget_alerts(tenant, now)
        events += _spike_alerts(tenant, now)
        events += _dominance_alerts(tenant, now)
        events += _loop_alerts(tenant, now)
    return [e for e in events if e is not None]


def alert_payload(event: AlertEvent) -> dict:
    return {
        "id": event.pk,
        "tenant": event.tenant_id,
        "tenant_external_id": event.tenant.external_id if event.tenant_id else None,
        "kind": event.kind,
        "state": event.state,
        "message": event.message,
        "data": event.data,
        "created_at": event.created_at.isoformat(),
    }


def alert_body(event: AlertEvent) -> bytes:
    return json.dumps(alert_payload(event), separators=(",", ":"), sort_keys=True).encode()
