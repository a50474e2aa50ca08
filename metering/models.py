from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils import timezone

from .encryption import EncryptedTextField


class Provider(models.Model):
    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI"
        ANTHROPIC = "anthropic", "Anthropic"
        OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    base_url = models.URLField(
        help_text="OpenAI-style kinds: including /v1 (https://api.openai.com/v1). Anthropic: the host "
        "(https://api.anthropic.com)."
    )
    api_key = EncryptedTextField(blank=True, help_text="Stored encrypted; never shown again.")
    admin_api_key = EncryptedTextField(
        blank=True,
        help_text="An admin key that reads the provider's own usage and cost reports, for the daily "
        "reconciliation (OpenAI: an admin key; Anthropic: an Admin API key). Stored encrypted; never shown again.",
    )
    usage_api_base_url = models.URLField(
        blank=True, help_text="Where the usage reports are served; empty: the base URL above."
    )
    connect_timeout_s = models.FloatField(null=True, blank=True, help_text="Empty: the global default.")
    read_timeout_s = models.FloatField(null=True, blank=True, help_text="Empty: the global default.")
    max_retries = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Retries of a 429, 5xx or failed connection on this provider before the next route; "
        "empty: the global default.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class ModelRoute(models.Model):
    """Which provider serves a model. `model` is exact, or a prefix ending in `*` (`claude-*`).
    Several routes for one model are tried in `priority` order: the later ones are fallbacks."""

    model = models.CharField(max_length=200)
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="routes")
    upstream_model = models.CharField(max_length=200, blank=True, help_text="Empty: the same name.")
    priority = models.PositiveSmallIntegerField(
        default=0, help_text="Lowest first; a higher one is used when the ones before it fail."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "priority"]
        constraints = [models.UniqueConstraint(fields=["model", "priority"], name="unique_route_priority")]

    def __str__(self) -> str:
        suffix = f" (fallback {self.priority})" if self.priority else ""
        return f"{self.model} → {self.provider.name}{suffix}"


class PriceOverride(models.Model):
    """A price that wins over the `genai-prices` data, globally or for one tenant, from a date on."""

    model = models.CharField(max_length=200, db_index=True)
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="price_overrides"
    )
    input_usd_per_mtok = models.DecimalField(max_digits=14, decimal_places=6)
    output_usd_per_mtok = models.DecimalField(max_digits=14, decimal_places=6)
    cached_input_usd_per_mtok = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True, help_text="Empty: the input price."
    )
    cache_write_usd_per_mtok = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True, help_text="Empty: the input price."
    )
    effective_from = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["model", "tenant", "effective_from"], name="unique_price_per_start"),
        ]

    def __str__(self) -> str:
        scope = self.tenant.name if self.tenant_id else "global"
        return f"{self.model} ({scope}) from {self.effective_from:%Y-%m-%d}"


class UsageEvent(models.Model):
    """The ledger: one append-only row per proxied request, success, error or rejection alike.

    `prompt_tokens` counts every input token, cached reads and cache writes included (OpenAI's
    convention; Anthropic usage is converted). `completion_tokens` includes reasoning tokens.
    """

    class UsageSource(models.TextChoices):
        PROVIDER = "provider"
        ESTIMATED = "estimated"
        NONE = "none"

    # Unique through Meta.constraints, not unique=True: the same index, without the pattern-ops
    # copy PostgreSQL gets for unique text fields. Every index is paid on every ledger insert.
    request_id = models.CharField(max_length=64)
    # No index of its own: (tenant, created_at) below serves lookups by tenant.
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, on_delete=models.PROTECT, related_name="usage_events", db_index=False
    )
    api_key = models.ForeignKey("tenants.ApiKey", null=True, on_delete=models.SET_NULL, related_name="+")
    end_user = models.CharField(max_length=200, blank=True, default="")
    feature = models.CharField(max_length=200, blank=True, default="")
    endpoint = models.CharField(max_length=40)
    model = models.CharField(max_length=200, blank=True, default="")
    provider = models.CharField(max_length=100, blank=True, default="")
    upstream_model = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="The model name the provider was sent (its route's renaming); what reconciliation compares.",
    )
    stream = models.BooleanField(default=False)

    prompt_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    usage_source = models.CharField(max_length=10, choices=UsageSource.choices, default=UsageSource.NONE)

    priced = models.BooleanField(default=True)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=9, null=True, blank=True)
    input_usd_per_mtok = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    output_usd_per_mtok = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    cached_input_usd_per_mtok = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    cache_write_usd_per_mtok = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    price_source = models.CharField(max_length=20, blank=True, default="")

    status_code = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=60, blank=True, default="")
    latency_ms = models.DecimalField(max_digits=12, decimal_places=3)
    upstream_latency_ms = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    upstream_attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Calls made to providers for this request: retries and fallbacks included."
    )
    ttft_ms = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # When the row was written (a stream is written when it ends): what the rollup watermark follows.
    recorded_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-id"]
        # On PostgreSQL the ledger is partitioned by month of created_at, and a unique constraint
        # there must hold the partition key. The writer also refuses a request_id the ledger holds
        # under another created_at: on PostgreSQL in its statement (services._RECORD_SQL), on
        # SQLite inside its write transaction (services.usage_record).
        constraints = [models.UniqueConstraint(fields=["request_id", "created_at"], name="usage_event_request_once")]
        indexes = [
            models.Index(fields=["tenant", "created_at"]),
            models.Index(fields=["tenant", "end_user", "created_at"]),
            models.Index(fields=["tenant", "feature", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} {self.status_code}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost_or_zero(self) -> Decimal:
        return self.cost_usd or Decimal("0")


class BudgetCounter(models.Model):
    """Spend of one budget scope in one period: a cache of the ledger, updated in the same
    transaction as each ledger row, so it never drifts from it.

    Spend = `base_usd` (the ledger's figure when the counter was made, or after a reset) plus its
    `BudgetSpend` shards. Settlements add to one of several shards, so concurrent settlements of
    one tenant do not queue on a single row while their ledger rows wait for the disk."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="budget_counters")
    scope = models.CharField(max_length=20)
    subject = models.CharField(max_length=200, blank=True, default="")
    period = models.CharField(max_length=10)
    period_key = models.CharField(max_length=20, help_text="2026-11 or 2026-11-27, in the tenant's time zone.")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    base_usd = models.DecimalField(max_digits=18, decimal_places=9, default=Decimal("0"))
    reset_at = models.DateTimeField(null=True, blank=True, help_text="Spend before this moment was forgiven.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "scope", "subject", "period", "period_key"], name="unique_counter_per_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.scope}:{self.subject} {self.period_key}"

    def spent(self) -> Decimal:
        return self.base_usd + (self.spends.aggregate(total=models.Sum("spent_usd"))["total"] or Decimal("0"))


class BudgetSpend(models.Model):
    """One shard of a counter's settled spend (see BudgetCounter)."""

    counter = models.ForeignKey(BudgetCounter, on_delete=models.CASCADE, related_name="spends")
    shard = models.PositiveSmallIntegerField()
    spent_usd = models.DecimalField(max_digits=18, decimal_places=9, default=Decimal("0"))

    class Meta:
        constraints = [models.UniqueConstraint(fields=["counter", "shard"], name="unique_spend_shard")]

    def __str__(self) -> str:
        return f"{self.counter_id}/{self.shard}: ${self.spent_usd}"


class BudgetReservation(models.Model):
    """Worst-case cost held against a counter while a request is in flight; it stops counting at
    `expires_at`, so a process that dies mid-request cannot strand budget."""

    # Looked up through the unique (request_id, counter) index; an index of its own would only
    # cost each insert and delete.
    request_id = models.CharField(max_length=64)
    counter = models.ForeignKey(BudgetCounter, on_delete=models.CASCADE, related_name="reservations")
    amount_usd = models.DecimalField(max_digits=18, decimal_places=9)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["request_id", "counter"], name="unique_reservation_per_counter"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id}: ${self.amount_usd} until {self.expires_at:%H:%M:%S}"


class UsageRollup(models.Model):
    """Ledger totals per hour or day (UTC) × tenant × model × feature × end user, recomputed
    from the ledger for dirty windows, so a rerun or a crash half-way leaves totals exact."""

    class Granularity(models.TextChoices):
        HOUR = "hour"
        DAY = "day"
        # One row per tenant and day (model, feature, end user empty): what margin tables read.
        TENANT_DAY = "tday", "tenant day"

    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    bucket_start = models.DateTimeField()
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="rollups")
    model = models.CharField(max_length=200, blank=True, default="")
    feature = models.CharField(max_length=200, blank=True, default="")
    end_user = models.CharField(max_length=200, blank=True, default="")
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    unpriced_requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=9, default=Decimal("0"))
    latency_ms_sum = models.DecimalField(max_digits=18, decimal_places=3, default=Decimal("0"))

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["granularity", "bucket_start", "tenant", "model", "feature", "end_user"],
                name="unique_rollup_bucket",
            ),
        ]
        indexes = [models.Index(fields=["granularity", "tenant", "bucket_start"])]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket_start:%Y-%m-%d %H:00} {self.tenant_id} {self.model}"


class RollupState(models.Model):
    """The rollup watermark: ledger rows recorded up to `recorded_through` are in the rollups."""

    name = models.CharField(max_length=50, unique=True, default="usage")
    recorded_through = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} through {self.recorded_through}"


class MarginReport(models.Model):
    """Revenue, AI cost and margin of one tenant for one UTC day or month; recomputed, not appended."""

    class Period(models.TextChoices):
        DAY = "day"
        MONTH = "month"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="margin_reports")
    period = models.CharField(max_length=5, choices=Period.choices)
    period_start = models.DateField()
    revenue_usd = models.DecimalField(max_digits=18, decimal_places=9)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=9)
    margin_usd = models.DecimalField(max_digits=18, decimal_places=9)
    margin_pct = models.DecimalField(max_digits=9, decimal_places=2, null=True, blank=True)
    requests = models.PositiveIntegerField(default=0)
    tokens = models.BigIntegerField(default=0)
    by_model = models.JSONField(default=list)
    by_feature = models.JSONField(default=list)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period_start", "tenant"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "period", "period_start"], name="unique_margin_report"),
        ]
        permissions = [("view_margins", "Can view the margin dashboards")]

    def __str__(self) -> str:
        return f"{self.tenant} {self.period} {self.period_start}: ${self.margin_usd}"


class WebhookEndpoint(models.Model):
    """Where alerts are POSTed, signed with HMAC-SHA256 under `secret` (see README)."""

    url = models.URLField()
    secret = EncryptedTextField()
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.url


class AlertEvent(models.Model):
    """An alert fired or recovered. `dedupe_key` makes each threshold fire once per period."""

    class Kind(models.TextChoices):
        BUDGET_THRESHOLD = "budget_threshold"
        PROJECTED_OVERSPEND = "projected_overspend"
        SPEND_SPIKE = "spend_spike"
        USER_DOMINANCE = "user_dominance"
        REPEATED_PROMPTS = "repeated_prompts"
        RECONCILIATION = "reconciliation"

    class State(models.TextChoices):
        FIRED = "fired"
        RECOVERED = "recovered"

    # Empty for a platform alert (a provider's bill that does not match the ledger).
    tenant = models.ForeignKey("tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.FIRED)
    dedupe_key = models.CharField(max_length=300)
    message = models.CharField(max_length=500)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    delivery_attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["dedupe_key", "state"], name="unique_alert_transition"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant or 'platform'} {self.kind} {self.state}"


class StoredResponse(models.Model):
    """A Responses API answer a provider keeps (`store`), and the tenant that made it: retrieval,
    deletion and `previous_response_id` reach only the tenant's own responses, on the provider
    that holds them."""

    response_id = models.CharField(max_length=200, unique=True)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="stored_responses")
    provider = models.CharField(max_length=100)
    model = models.CharField(max_length=200)
    request_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.response_id


class ProviderUsage(models.Model):
    """What a provider reports it served and billed, per UTC day and model, as imported from its
    usage and cost reports (or a console export). Replaced whole per provider and day by each
    import. Input tokens include cached reads and cache writes, as in the ledger."""

    provider = models.CharField(max_length=100)
    day = models.DateField()
    model = models.CharField(max_length=200)
    requests = models.PositiveIntegerField(null=True, blank=True, help_text="Empty where the report has none.")
    input_tokens = models.PositiveBigIntegerField(default=0)
    cached_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=9, null=True, blank=True)
    source = models.CharField(max_length=40, help_text="openai_usage_api, anthropic_usage_report or csv")
    imported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day", "provider", "model"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "day", "model"], name="provider_usage_unique_day_model")
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.day} {self.model}"


class UsageImport(models.Model):
    """One attempt to read a provider's usage report for a range of days: what came back, or why not."""

    provider = models.CharField(max_length=100)
    first_day = models.DateField()
    last_day = models.DateField()
    ok = models.BooleanField(default=False)
    rows = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.provider} {self.first_day}..{self.last_day} {'ok' if self.ok else 'failed'}"


class Reconciliation(models.Model):
    """The ledger against the provider's own report, per provider, UTC day and model. Ledger
    figures count rows with provider-reported usage; rows whose usage was estimated (a cut
    stream, an abandoned request) are counted apart. Recomputed whole per provider and day."""

    class Status(models.TextChoices):
        MATCH = "match"
        DRIFT = "drift"
        MISSING_IN_LEDGER = "missing_in_ledger"
        MISSING_AT_PROVIDER = "missing_at_provider"

    provider = models.CharField(max_length=100)
    day = models.DateField()
    model = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices)
    ledger_requests = models.PositiveIntegerField(default=0)
    provider_requests = models.PositiveIntegerField(null=True, blank=True)
    ledger_input_tokens = models.PositiveBigIntegerField(default=0)
    provider_input_tokens = models.PositiveBigIntegerField(default=0)
    ledger_cached_tokens = models.PositiveBigIntegerField(default=0)
    provider_cached_tokens = models.PositiveBigIntegerField(default=0)
    ledger_cache_write_tokens = models.PositiveBigIntegerField(default=0)
    provider_cache_write_tokens = models.PositiveBigIntegerField(default=0)
    ledger_output_tokens = models.PositiveBigIntegerField(default=0)
    provider_output_tokens = models.PositiveBigIntegerField(default=0)
    ledger_cost_usd = models.DecimalField(max_digits=18, decimal_places=9, default=0)
    provider_cost_usd = models.DecimalField(max_digits=18, decimal_places=9, null=True, blank=True)
    estimated_requests = models.PositiveIntegerField(default=0)
    estimated_input_tokens = models.PositiveBigIntegerField(default=0)
    estimated_output_tokens = models.PositiveBigIntegerField(default=0)
    capture_rate = models.DecimalField(
        max_digits=9, decimal_places=6, null=True, blank=True, help_text="Ledger tokens ÷ provider tokens."
    )
    ledger_models = models.JSONField(default=list, blank=True, help_text="The ledger's model names behind this row.")
    detail = models.CharField(max_length=500, blank=True, default="")
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day", "provider", "model"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "day", "model"], name="reconciliation_unique_day_model")
        ]
        indexes = [models.Index(fields=["status", "day"])]

    def __str__(self) -> str:
        return f"{self.provider} {self.day} {self.model}: {self.status}"


class LedgerArchive(models.Model):
    """A month of the ledger exported to Parquet and, once its figures were final, dropped from
    PostgreSQL as a whole partition. Its rollups, margin reports and reconciliations stay."""

    month = models.DateField(unique=True, help_text="The first day of the UTC month.")
    partition = models.CharField(max_length=63)
    rows = models.PositiveBigIntegerField()
    cost_usd = models.DecimalField(max_digits=18, decimal_places=9, help_text="The exported rows' total cost.")
    path = models.CharField(max_length=500, help_text="The Parquet file, where the export wrote it.")
    bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    exported_at = models.DateTimeField()
    dropped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-month"]

    def __str__(self) -> str:
        state = "dropped" if self.dropped_at else "exported"
        return f"ledger {self.month:%Y-%m}: {self.rows} rows {state}"


class AnalyticsOutbox(models.Model):
    """A ledger row ClickHouse has not taken yet (only with CLICKHOUSE_URL set): inserted by the
    ledger write's own statement, deleted once ClickHouse acknowledged the row (metering.analytics).
    `batch` names the shipment it left in, until that shipment is known to have arrived."""

    event_id = models.BigIntegerField(primary_key=True)
    event_created_at = models.DateTimeField()
    batch = models.CharField(max_length=32, blank=True, default="", db_index=True)

    def __str__(self) -> str:
        return f"ledger row {self.event_id} for ClickHouse"
