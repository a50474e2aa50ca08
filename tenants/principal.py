"""What the proxy knows about the caller after authentication: a cacheable snapshot of the key,
its tenant, the plan's caps and the tenant's budgets and rate limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from guard.policy import parse_role_thresholds

from .models import ApiKey, Budget, RateLimit, Tenant


@dataclass(frozen=True)
class BudgetSpec:
    scope: str
    subject: str
    period: str
    limit_usd: Decimal
    hard: bool
    raised_limit_usd: Decimal | None = None
    raised_until: datetime | None = None

    def limit_at(self, at: datetime) -> Decimal:
        if self.raised_limit_usd is not None and self.raised_until and self.raised_until > at:
            return self.raised_limit_usd
        return self.limit_usd


@dataclass(frozen=True)
class LimitSpec:
    scope: str
    subject: str
    rpm_limit: int | None
    tpm_limit: int | None
    max_concurrency: int | None


@dataclass(frozen=True)
class Principal:
    key_id: int
    key_hash: str
    tenant_id: int
    tenant_name: str
    tenant_active: bool
    tenant_timezone: str
    plan_id: int
    expires_at: datetime | None
    revoked: bool
    monthly_budget_usd: Decimal | None
    rpm_limit: int | None
    tpm_limit: int | None
    max_concurrency: int | None
    loop_max_repeats: int = 0
    loop_window_seconds: int = 60
    allowed_models: tuple[str, ...] = field(default_factory=tuple)
    allow_unpriced_models: bool = True
    guard_mode: str = "block"
    guard_block_threshold: float | None = None
    guard_sanitize_threshold: float | None = None
    # role → (block, sanitize), either None for "the principal's own"
    guard_role_thresholds: tuple[tuple[str, tuple[float | None, float | None]], ...] = field(default_factory=tuple)
    guard_scan_system: bool = False
    budgets: tuple[BudgetSpec, ...] = field(default_factory=tuple)
    rate_limits: tuple[LimitSpec, ...] = field(default_factory=tuple)

    @classmethod
    def from_key(cls, key: ApiKey) -> Principal:
        return cls.for_tenant(key.tenant, key=key)

    @classmethod
    def for_tenant(cls, tenant: Tenant, *, key: ApiKey | None = None) -> Principal:
        """The snapshot for a key, or for the tenant alone (key_id 0) when reporting on it."""
        plan = tenant.plan
        budgets = tuple(
            BudgetSpec(b.scope, b.subject, b.period, b.limit_usd, b.hard, b.raised_limit_usd, b.raised_until)
            for b in Budget.objects.filter(tenant=tenant)
        )
        rate_limits = tuple(
            LimitSpec(r.scope, r.subject, r.rpm_limit, r.tpm_limit, r.max_concurrency)
            for r in RateLimit.objects.filter(tenant=tenant)
        )
        return cls(
            key_id=key.pk if key else 0,
            key_hash=key.key_hash if key else "",
            tenant_id=tenant.pk,
            tenant_name=tenant.name,
            tenant_active=tenant.is_active,
            tenant_timezone=tenant.timezone,
            plan_id=tenant.plan_id,
            expires_at=key.expires_at if key else None,
            revoked=key.revoked_at is not None if key else False,
            monthly_budget_usd=tenant.effective_cap("monthly_budget_usd"),
            rpm_limit=tenant.effective_cap("rpm_limit"),
            tpm_limit=tenant.effective_cap("tpm_limit"),
            max_concurrency=tenant.effective_cap("max_concurrency"),
            loop_max_repeats=plan.loop_max_repeats,
            loop_window_seconds=plan.loop_window_seconds,
            allowed_models=tuple(plan.allowed_models or ()),
            allow_unpriced_models=plan.allow_unpriced_models,
            guard_mode=tenant.guard_mode or plan.guard_mode,
            guard_block_threshold=_own_or_plans(tenant.guard_block_threshold, plan.guard_block_threshold),
            guard_sanitize_threshold=_own_or_plans(tenant.guard_sanitize_threshold, plan.guard_sanitize_threshold),
            guard_role_thresholds=tuple(sorted(parse_role_thresholds(plan.guard_role_thresholds or {}).items())),
            guard_scan_system=plan.guard_scan_system,
            budgets=budgets,
            rate_limits=rate_limits,
        )

    def may_call(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models


def _own_or_plans(own, plans):
    return own if own is not None else plans
