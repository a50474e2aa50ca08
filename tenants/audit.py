"""The audit log: every create, change and delete of an administrative object, whoever made it
and however (the admin, the management API, a command or a job).

Signals record it, so the admin, the API's services and commands are covered without each
remembering to: `pre_save` reads the row as it was (one query, on writes that are never on the
proxy's path), `post_save` and `post_delete` write the entry. The request behind a write (its
user once DRF has authenticated it, its address, its path) comes from `AuditRequestMiddleware`
through a context variable; without one the actor is "system". Queryset `.update()`s fire no
signal: the hot path's counters and a key's `last_used_at` are not administrative changes.
"""

from __future__ import annotations

import contextvars
from datetime import date, datetime
from decimal import Decimal

from django.apps import apps
from django.db import models
from django.db.models.signals import post_delete, post_save, pre_save

from spendplane import security
from spendplane.middleware import API_PREFIX

from .models import AuditEntry

AUDITED = (
    "tenants.Plan",
    "tenants.Tenant",
    "tenants.ApiKey",
    "tenants.Budget",
    "tenants.RateLimit",
    "tenants.Credit",
    "tenants.RevenueEntry",
    "metering.Provider",
    "metering.ModelRoute",
    "metering.PriceOverride",
    "metering.WebhookEndpoint",
)
# Stored as "(changed)" / "(set)", never as values.
SECRET_FIELDS = {"api_key", "admin_api_key", "secret", "key_hash"}
# Bookkeeping that changes on its own: not a change anyone made.
IGNORED_FIELDS = {"updated_at", "last_used_at", "history"}
MASKED = "(secret)"

_request: contextvars.ContextVar = contextvars.ContextVar("audit_request", default=None)


class AuditRequestMiddleware:
    """Makes the current request (and so, later, its authenticated user) known to the audit
    signals. Skipped under /v1/: the proxy changes no administrative object."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def _jsonable(value):
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | dict | str | int | float | bool) or value is None:
        return value
    return str(value)


def _values(instance) -> dict:
    values = {}
    for field in instance._meta.concrete_fields:
        if field.attname in IGNORED_FIELDS or field.primary_key:
            continue
        value = getattr(instance, field.attname)
        if isinstance(field, models.DecimalField) and value is not None:
            # the same amount reads alike whether it came from a form, the API or the database
            value = Decimal(value).quantize(Decimal(10) ** -field.decimal_places)
        if field.attname in SECRET_FIELDS:
            values[field.attname] = MASKED if value else ""
        else:
            values[field.attname] = _jsonable(value)
    return values


def _actor() -> tuple[object | None, str, str | None, str]:
    request = _request.get()
    if request is None:
        return None, "system", None, ""
    user = getattr(request, "user", None)
    label = (getattr(user, "username", "") or str(user)) if user and user.is_authenticated else "anonymous"
    account = user if getattr(user, "pk", None) else None
    return account, label, security.client_address(request.META) or None, f"{request.method} {request.path}"[:200]


def _tenant_id(instance) -> int | None:
    if instance._meta.label == "tenants.Tenant":
        return instance.pk
    return getattr(instance, "tenant_id", None)


def _record(instance, action: str, before: dict | None, after: dict | None) -> None:
    account, label, address, via = _actor()
    AuditEntry.objects.create(
        actor=account,
        actor_label=label[:150],
        remote_addr=address,
        via=via,
        action=action,
        object_type=instance._meta.label_lower,
        object_id=str(instance.pk),
        object_repr=str(instance)[:300],
        tenant_id=_tenant_id(instance),
        before=before,
        after=after,
    )


def _secrets(instance) -> dict:
    return {
        f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields if f.attname in SECRET_FIELDS
    }


def _before_save(sender, instance, raw=False, **kwargs) -> None:
    instance._audit_before = instance._audit_secrets = None
    if raw or instance.pk is None or instance._state.adding:
        return
    stored = sender._base_manager.filter(pk=instance.pk).first()
    if stored is not None:
        # the secrets' values stay in memory only, to tell whether they changed
        instance._audit_before, instance._audit_secrets = _values(stored), _secrets(stored)


def _after_save(sender, instance, created, raw=False, **kwargs) -> None:
    if raw:
        return
    after = _values(instance)
    before = getattr(instance, "_audit_before", None)
    if created or before is None:
        _record(instance, AuditEntry.Action.CREATED, None, after)
        return
    secrets_before, secrets_now = instance._audit_secrets or {}, _secrets(instance)
    replaced = {name for name, value in secrets_now.items() if value != secrets_before.get(name)}
    after = {**after, **dict.fromkeys(replaced, "(changed)")}
    changed = sorted(name for name in after if after[name] != before.get(name))
    if not changed:
        return
    _record(
        instance,
        AuditEntry.Action.CHANGED,
        {name: before.get(name) for name in changed},
        {name: after[name] for name in changed},
    )


def _after_delete(sender, instance, **kwargs) -> None:
    _record(instance, AuditEntry.Action.DELETED, _values(instance), None)


def connect() -> None:
    for label in AUDITED:
        model = apps.get_model(label)
        uid = f"audit:{label}"
        pre_save.connect(_before_save, sender=model, dispatch_uid=f"{uid}:pre")
        post_save.connect(_after_save, sender=model, dispatch_uid=f"{uid}:post")
        post_delete.connect(_after_delete, sender=model, dispatch_uid=f"{uid}:delete")
