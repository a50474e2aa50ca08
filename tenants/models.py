from __future__ import annotations

import hashlib
import hmac
import secrets
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from guard.models import GuardMode
from guard.policy import parse_role_thresholds

KEY_PREFIX = "sp_"
# "sp_" plus 8 characters: what is stored in the clear and shown in lists.
KEY_LOOKUP_LENGTH = 11


def validate_role_thresholds(value) -> None:
    try:
        parse_role_thresholds(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class Plan(models.Model):
    name = models.CharField(max_length=100, unique=True)
    monthly_price_usd = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    monthly_budget_usd = models.DecimalField(
        max_digits=18, decimal_places=9, null=True, blank=True, help_text="Empty: no monthly AI spend cap."
    )
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute; empty: none.")
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens per minute; empty: none.")
    max_concurrency = models.PositiveIntegerField(null=True, blank=True, help_text="In-flight requests; empty: none.")
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Model names this plan may call; empty: every routed model."
    )
    loop_max_repeats = models.PositiveIntegerField(
        default=30, help_text="The same end user may send the same request this many times per loop window."
    )
    loop_window_seconds = models.PositiveIntegerField(default=60)
    guard_mode = models.CharField(
        max_length=10,
        choices=GuardMode.choices,
        default="block",
        help_text="What the prompt-injection guard does with a detection.",
    )
    guard_block_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0)],
        help_text="Refuse a text scoring at least this (0-1; over 1 never blocks); empty: the shipped default.",
    )
    guard_sanitize_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0)],
        help_text="Fence a text scoring at least this as untrusted data; empty: the shipped default.",
    )
    guard_role_thresholds = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_role_thresholds],
        help_text='Per message role, e.g. {"tool": {"block": 0.9, "sanitize": 0.3}}; a number: the sanitise threshold.',
    )
    guard_scan_system = models.BooleanField(default=False, help_text="Also scan the tenant's own system prompt.")
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
    monthly_budget_usd = models.DecimalField(max_digits=18, decimal_places=9, null=True, blank=True)
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    max_concurrency = models.PositiveIntegerField(null=True, blank=True)
    monthly_price_override_usd = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    guard_mode = models.CharField(
        max_length=10,
        blank=True,
        default="",
        choices=[("", "The plan's"), *GuardMode.choices],
    )
    guard_block_threshold = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0)])
    guard_sanitize_threshold = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0)])
    timezone = models.CharField(max_length=64, default="UTC")
    revenue_source = models.CharField(
        max_length=10,
        choices=[("plan", "Plan price, prorated by day"), ("invoiced", "Invoiced (revenue entries)")],
        default="plan",
        help_text="What the margin is reckoned against: the plan's list price, or what was actually invoiced.",
    )
    billing_customer_id = models.CharField(
        max_length=200,
        blank=True,
        default="",
        db_index=True,
        help_text="The billing system's customer id (Stripe cus_…).",
    )
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


class Scope(models.TextChoices):
    TENANT = "tenant"
    END_USER = "end_user"
    FEATURE = "feature"
    KEY = "key"


# A Budget or RateLimit whose subject is this applies to every end user (feature, key) that has no row of its own.
EVERY_SUBJECT = "*"


class Budget(models.Model):
    """A spend cap for one scope of a tenant over a day or a month (in the tenant's time zone)."""

    class Period(models.TextChoices):
        DAY = "day"
        MONTH = "month"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="budgets")
    scope = models.CharField(max_length=20, choices=Scope.choices)
    subject = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="End user id, feature name or key id; empty for the tenant; * for every one without its own budget.",
    )
    period = models.CharField(max_length=10, choices=Period.choices, default=Period.MONTH)
    limit_usd = models.DecimalField(max_digits=18, decimal_places=9)
    hard = models.BooleanField(default=True, help_text="Hard: block when spent. Soft: alert only.")
    raised_limit_usd = models.DecimalField(
        max_digits=18, decimal_places=9, null=True, blank=True, help_text="A temporary limit in force until the date."
    )
    raised_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "scope", "subject", "period"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "scope", "subject", "period"], name="unique_budget_per_scope"),
        ]

    def __str__(self) -> str:
        subject = f" {self.subject}" if self.subject else ""
        return f"{self.tenant} {self.scope}{subject} per {self.period}: ${self.limit_usd}"

    def effective_limit(self, at=None) -> Decimal:
        at = at or timezone.now()
        if self.raised_limit_usd is not None and self.raised_until and self.raised_until > at:
            return self.raised_limit_usd
        return self.limit_usd


class RateLimit(models.Model):
    """Request, token and concurrency caps for a key, end user or feature (tenant caps live on the plan)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="rate_limits")
    scope = models.CharField(max_length=20, choices=Scope.choices)
    subject = models.CharField(max_length=200, blank=True, default="")
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    max_concurrency = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "scope", "subject"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "scope", "subject"], name="unique_rate_limit_per_scope"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant} {self.scope} {self.subject or '(tenant)'}"


class CapChange(models.Model):
    """Who changed which cap of a tenant, from what, to what, when. Append-only."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="cap_changes")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_label = models.CharField(max_length=150, help_text="Username, or 'master-key' for the API operator.")
    what = models.CharField(max_length=200)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.tenant}: {self.what} by {self.actor_label}"


class Credit(models.Model):
    """A one-off credit given to a tenant: revenue reduced by this amount on that day."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="credits")
    amount_usd = models.DecimalField(max_digits=12, decimal_places=2)
    day = models.DateField()
    note = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"{self.tenant} credit ${self.amount_usd} on {self.day}"


class RevenueEntry(models.Model):
    """Revenue the billing system invoiced a tenant for a service period (a negative amount: a credit
    note or refund). One row per (source, external id): a re-import changes nothing, a corrected
    invoice replaces its row, the values it had kept in `history`."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="revenue_entries")
    source = models.CharField(max_length=40, help_text="Where it came from: stripe, csv, api, or your billing system.")
    external_id = models.CharField(max_length=200, help_text="Its id in that source (an invoice or credit note id).")
    period_start = models.DateField()
    period_end = models.DateField(help_text="Inclusive; the revenue is spread evenly over the period's days.")
    amount_usd = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    description = models.CharField(max_length=500, blank=True, default="")
    history = models.JSONField(default=list, blank=True, help_text="Earlier values, each with when it was replaced.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period_start", "-id"]
        verbose_name_plural = "revenue entries"
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="revenue_entry_unique_per_source"),
            models.CheckConstraint(
                condition=models.Q(period_end__gte=models.F("period_start")), name="revenue_entry_period_order"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "period_start", "period_end"])]

    def __str__(self) -> str:
        return f"{self.source}:{self.external_id} {self.amount_usd} USD"


class AuditEntry(models.Model):
    """One create, change or delete of an administrative object (plans, tenants, keys, budgets,
    limits, providers, routes, prices, revenue, credits, webhooks), through the admin, the API or
    a command: who, what, before, after, when, from where. Append-only; secrets show as changed,
    never as values (`tenants.audit`)."""

    class Action(models.TextChoices):
        CREATED = "created"
        CHANGED = "changed"
        DELETED = "deleted"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_label = models.CharField(max_length=150, help_text="Username, 'master-key', or 'system' (a job or command).")
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    via = models.CharField(max_length=200, blank=True, default="", help_text="The request's method and path.")
    action = models.CharField(max_length=10, choices=Action.choices)
    object_type = models.CharField(max_length=100, help_text="app_label.model")
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=300)
    tenant_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.object_type} {self.object_repr}"
