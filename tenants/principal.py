"""What the proxy knows about the caller after authentication: a cacheable snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from .models import ApiKey


@dataclass(frozen=True)
class Principal:
    key_id: int
    key_hash: str
    tenant_id: int
    tenant_name: str
    tenant_active: bool
    plan_id: int
    expires_at: datetime | None
    revoked: bool
    monthly_budget_usd: Decimal | None
    rpm_limit: int | None
    tpm_limit: int | None
    max_concurrency: int | None
    allowed_models: tuple[str, ...] = field(default_factory=tuple)
    allow_unpriced_models: bool = True

    @classmethod
    def from_key(cls, key: ApiKey) -> Principal:
        tenant = key.tenant
        return cls(
            key_id=key.pk,
            key_hash=key.key_hash,
            tenant_id=tenant.pk,
            tenant_name=tenant.name,
            tenant_active=tenant.is_active,
            plan_id=tenant.plan_id,
            expires_at=key.expires_at,
            revoked=key.revoked_at is not None,
            monthly_budget_usd=tenant.effective_cap("monthly_budget_usd"),
            rpm_limit=tenant.effective_cap("rpm_limit"),
            tpm_limit=tenant.effective_cap("tpm_limit"),
            max_concurrency=tenant.effective_cap("max_concurrency"),
            allowed_models=tuple(tenant.plan.allowed_models or ()),
            allow_unpriced_models=tenant.plan.allow_unpriced_models,
        )

    def may_call(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models
