from __future__ import annotations

import hashlib
import hmac
import secrets
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

KEY_PREFIX = "sp_"
# "sp_" plus 8 characters: what is stored in the clear and shown in lists.
KEY_LOOKUP_LENGTH = 11


class Plan(models.Model):
    name = models.CharField(max_length=100, unique=True)
    monthly_price_usd = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    monthly_budget_usd = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True, help_text="Empty: no monthly AI spend cap."
    )
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute; empty: none.")
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens per minute; empty: none.")
    max_concurrency = models.PositiveIntegerField(null=True, blank=True, help_text="In-flight requests; empty: none.")
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Model names this plan may call; empty: every routed model."
    )
    allow_unpriced_models = models.BooleanField(
        default=True, help_text="Whether models with no known price may be called (their cost is recorded as unknown)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tenant(models.Model):
    """A customer of the SaaS company that runs Spendplane."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"

    CAP_FIELDS = ("monthly_budget_usd", "rpm_limit", "tpm_limit", "max_concurrency")

    name = models.CharField(max_length=200)
    external_id = models.CharField(max_length=200, unique=True, help_text="The SaaS company's own id for it.")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="tenants")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    # Cap overrides: empty means "the plan's value".
    monthly_budget_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    max_concurrency = models.PositiveIntegerField(null=True, blank=True)
    monthly_price_override_usd = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def effective_cap(self, field: str):
        """The tenant's override of a cap when set, otherwise the plan's."""
        own = getattr(self, field)
        return own if own is not None else getattr(self.plan, field)

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


def hash_api_key(raw: str) -> str:
    """HMAC-SHA256 of a raw key under the server's pepper, hex."""
    pepper = settings.SPENDPLANE_KEY_PEPPER.encode()
    return hmac.new(pepper, raw.encode(), hashlib.sha256).hexdigest()


class ApiKeyQuerySet(models.QuerySet):
    def for_raw_key(self, raw: str) -> ApiKey | None:
        """The key row matching a raw key, compared in constant time; None when none matches."""
        if not raw.startswith(KEY_PREFIX) or len(raw) < KEY_LOOKUP_LENGTH + 8:
            return None
        digest = hash_api_key(raw)
        for key in self.select_related("tenant__plan").filter(prefix=raw[:KEY_LOOKUP_LENGTH]):
            if hmac.compare_digest(key.key_hash, digest):
                return key
        return None


class ApiKey(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=KEY_LOOKUP_LENGTH, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate_raw() -> str:
        return KEY_PREFIX + secrets.token_urlsafe(30)

    def set_raw(self, raw: str) -> None:
        self.prefix = raw[:KEY_LOOKUP_LENGTH]
        self.key_hash = hash_api_key(raw)

    def matches(self, raw: str) -> bool:
        return hmac.compare_digest(self.key_hash, hash_api_key(raw))

    def is_usable(self, at=None) -> bool:
        at = at or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > at
