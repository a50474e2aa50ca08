"""Tenant-scoped reads: the same 404 whether a row is missing or not the caller's."""

from __future__ import annotations

from django.http import Http404

from .models import ApiKey, Tenant


def access_tenant(user, tenant_id) -> Tenant:
    if not (user and user.is_authenticated and user.is_staff):
        raise Http404
    try:
        return Tenant.objects.select_related("plan").get(pk=tenant_id)
    except (Tenant.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def access_api_key(user, tenant: Tenant, key_id) -> ApiKey:
    try:
        return tenant.api_keys.get(pk=key_id)
    except (ApiKey.DoesNotExist, ValueError, TypeError):
        raise Http404 from None
