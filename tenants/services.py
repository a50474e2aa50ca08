"""Writes to plans, tenants and keys. Views, the API, the admin and commands all call these."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .models import ApiKey, Plan, Tenant


def tenant_create(*, name: str, external_id: str, plan: Plan, **fields) -> Tenant:
    return Tenant.objects.create(name=name, external_id=external_id, plan=plan, **fields)


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
