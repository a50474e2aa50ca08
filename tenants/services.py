"""Writes to plans, tenants, keys, budgets and limits. The API, the admin and commands all call
these, so every cap change is recorded the same way (who, what, before, after, when)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from .models import ApiKey, Budget, CapChange, Plan, RateLimit, Tenant

_BUDGET_FIELDS = ("scope", "subject", "period", "limit_usd", "hard", "raised_limit_usd", "raised_until")
_LIMIT_FIELDS = ("scope", "subject", "rpm_limit", "tpm_limit", "max_concurrency")


def _actor(user) -> tuple[object | None, str]:
    if user is None:
        return None, "system"
    label = getattr(user, "username", "") or str(user)
    return (user if getattr(user, "pk", None) else None), label


def _jsonable(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    return value


def cap_change_record(*, tenant: Tenant, actor, what: str, before: dict | None, after: dict | None, reason: str = ""):
    user, label = _actor(actor)
    return CapChange.objects.create(
        tenant=tenant,
        actor=user,
        actor_label=label,
        what=what,
        before={k: _jsonable(v) for k, v in before.items()} if before is not None else None,
        after={k: _jsonable(v) for k, v in after.items()} if after is not None else None,
        reason=reason,
    )


def tenant_create(*, name: str, external_id: str, plan: Plan, **fields) -> Tenant:
    return Tenant.objects.create(name=name, external_id=external_id, plan=plan, **fields)


@transaction.atomic
def tenant_update(*, tenant: Tenant, actor=None, reason: str = "", **fields) -> Tenant:
    """Update a tenant; changes to its caps, plan or status are recorded as CapChanges."""
    watched = (*Tenant.CAP_FIELDS, "plan", "status", "monthly_price_override_usd")
    before = {f: getattr(tenant, f"{f}_id" if f == "plan" else f) for f in watched}
    for name, value in fields.items():
        setattr(tenant, name, value)
    tenant.save()
    after = {f: getattr(tenant, f"{f}_id" if f == "plan" else f) for f in watched}
    changed = {f for f in watched if before[f] != after[f]}
    if changed:
        cap_change_record(
            tenant=tenant,
            actor=actor,
            what="tenant " + ", ".join(sorted(changed)),
            before={f: before[f] for f in sorted(changed)},
            after={f: after[f] for f in sorted(changed)},
            reason=reason,
        )
    return tenant


def tenant_suspend(*, tenant: Tenant, actor=None, reason: str = "") -> Tenant:
    return tenant_update(tenant=tenant, actor=actor, reason=reason, status=Tenant.Status.SUSPENDED)


def tenant_resume(*, tenant: Tenant, actor=None, reason: str = "") -> Tenant:
    return tenant_update(tenant=tenant, actor=actor, reason=reason, status=Tenant.Status.ACTIVE)


def _save_recorded(instance, fields: tuple[str, ...], what: str, *, actor, reason: str):
    """Save a cap-holding row and record before and after when anything in `fields` changed."""
    before = None
    if instance.pk:
        old = type(instance).objects.filter(pk=instance.pk).first()
        before = model_to_dict(old, fields=fields) if old else None
    instance.save()
    after = model_to_dict(instance, fields=fields)
    if before != after:
        cap_change_record(tenant=instance.tenant, actor=actor, what=what, before=before, after=after, reason=reason)
    return instance


@transaction.atomic
def budget_save(*, budget: Budget, actor=None, reason: str = "") -> Budget:
    """Create or update a budget, recording the change."""
    what = " ".join(part for part in ("budget", budget.scope, budget.subject, "per", budget.period) if part)
    return _save_recorded(budget, _BUDGET_FIELDS, what, actor=actor, reason=reason)


@transaction.atomic
def budget_delete(*, budget: Budget, actor=None, reason: str = "") -> None:
    cap_change_record(
        tenant=budget.tenant,
        actor=actor,
        what=f"budget {budget.scope} {budget.subject} per {budget.period} removed",
        before=model_to_dict(budget, fields=_BUDGET_FIELDS),
        after=None,
        reason=reason,
    )
    budget.delete()


def budget_raise_until(
    *, tenant: Tenant, limit_usd: Decimal, until: datetime, period: str = "month", actor=None, reason: str = ""
) -> Budget:
    """Raise the tenant's budget for `period` to `limit_usd` until `until`; it falls back by itself."""
    budget = Budget.objects.filter(tenant=tenant, scope="tenant", subject="", period=period).first()
    if budget is None:
        base = tenant.effective_cap("monthly_budget_usd") if period == "month" else None
        budget = Budget(tenant=tenant, scope="tenant", subject="", period=period, limit_usd=base or limit_usd)
    budget.raised_limit_usd = limit_usd
    budget.raised_until = until
    return budget_save(budget=budget, actor=actor, reason=reason)


@transaction.atomic
def budget_period_reset(
    *, tenant: Tenant, scope: str = "tenant", subject: str = "", period: str = "month", actor=None, reason: str = ""
):
    """Forgive the spend of the current period for one budget scope; recorded with the amount."""
    from metering.budgets import budget_reset_period, period_bounds

    key, _, _ = period_bounds(period, timezone.now(), tenant.timezone)
    from metering.models import BudgetCounter

    old = BudgetCounter.objects.filter(
        tenant=tenant, scope=scope, subject=subject, period=period, period_key=key
    ).first()
    counter = budget_reset_period(
        tenant_id=tenant.pk, scope=scope, subject=subject, period=period, tz_name=tenant.timezone
    )
    cap_change_record(
        tenant=tenant,
        actor=actor,
        what=f"reset {scope} {subject} spend for {key}".replace("  ", " "),
        before={"spent_usd": old.spent() if old else None},
        after={"spent_usd": counter.spent()},
        reason=reason,
    )
    return counter


@transaction.atomic
def rate_limit_save(*, limit: RateLimit, actor=None, reason: str = "") -> RateLimit:
    """Create or update a rate limit, recording the change."""
    what = f"rate limit {limit.scope} {limit.subject}".strip()
    return _save_recorded(limit, _LIMIT_FIELDS, what, actor=actor, reason=reason)


@transaction.atomic
def api_key_create(*, tenant: Tenant, name: str, expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext, which is never stored and never shown again."""
    raw = ApiKey.generate_raw()
    key = ApiKey(tenant=tenant, name=name, expires_at=expires_at)
    key.set_raw(raw)
    key.save()
    return key, raw


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    """Revoke a key; idempotent (a second revoke keeps the first time)."""
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


@transaction.atomic
def api_key_rotate(*, key: ApiKey) -> tuple[ApiKey, str]:
    """Revoke a key and issue its replacement with the same name and expiry."""
    api_key_revoke(key=key)
    return api_key_create(tenant=key.tenant, name=key.name, expires_at=key.expires_at)
