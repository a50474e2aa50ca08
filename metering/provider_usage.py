"""The providers' own usage and cost reports, read into `ProviderUsage` rows per UTC day and model.

- OpenAI's organization Usage API (`/organization/usage/completions` and `/embeddings`, daily
  buckets grouped by model, following `next_page`) and its Costs API (`/organization/costs`,
  grouped by line item, "<model>, input" …) where it answers;
- Anthropic's Admin API usage report (`/v1/organizations/usage_report/messages`, daily buckets by
  model: uncached input, cache reads, cache writes, output) and cost report
  (`/v1/organizations/cost_report`, amounts in cents, by model) where it answers;
- a CSV export from a provider's console, for anything else.

An import fetches every page first and replaces the provider's rows for those days in one
transaction, so a refused key, a 5xx, a page that fails or malformed JSON writes nothing; the
attempt is recorded (`UsageImport`) and the next run tries again.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

import requests
from django.conf import settings
from django.db import transaction

from .models import Provider, ProviderUsage, UsageImport

TIMEOUT_S = 30
MAX_PAGES = 200
CENTS = Decimal("0.01")


class ProviderUsageError(Exception):
    """A usage report could not be read: nothing was written. `status`: the HTTP status, if any."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UsageSource:
    """A provider whose usage reports can be read: a `Provider` with an admin key, or one of the
    environment's default upstreams with OPENAI_ADMIN_KEY / ANTHROPIC_ADMIN_KEY."""

    name: str
    kind: str
    base_url: str
    admin_key: str


@dataclass
class DayFigures:
    requests: int | None = None
    input_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal | None = None

    def add_cost(self, amount: Decimal) -> None:
        self.cost_usd = (self.cost_usd or Decimal(0)) + amount


@dataclass
class Report:
    source: str
    figures: dict[tuple[date, str], DayFigures] = field(default_factory=dict)

    def at(self, day: date, model: str) -> DayFigures:
        return self.figures.setdefault((day, model), DayFigures())


def usage_sources() -> list[UsageSource]:
    sources = [
        UsageSource(p.name, p.kind, p.usage_api_base_url or p.base_url, p.admin_api_key)
        for p in Provider.objects.filter(is_active=True).exclude(admin_api_key="")
        if p.admin_api_key
    ]
    if settings.OPENAI_ADMIN_KEY:
        sources.append(UsageSource("openai-default", "openai", settings.OPENAI_BASE_URL, settings.OPENAI_ADMIN_KEY))
    if settings.ANTHROPIC_ADMIN_KEY:
        sources.append(
            UsageSource("anthropic-default", "anthropic", settings.ANTHROPIC_BASE_URL, settings.ANTHROPIC_ADMIN_KEY)
        )
    return sources


def _bounds(first: date, last: date) -> tuple[datetime, datetime]:
    return datetime.combine(first, time.min, tzinfo=UTC), datetime.combine(
        last + timedelta(days=1), time.min, tzinfo=UTC
    )


def _get(session: requests.Session, url: str, params: dict, what: str) -> dict:
    try:
        response = session.get(url, params=params, timeout=TIMEOUT_S)
    except requests.RequestException as error:
        raise ProviderUsageError(f"{what}: no answer ({error.__class__.__name__})") from None
    if response.status_code != 200:
        raise ProviderUsageError(
            f"{what}: HTTP {response.status_code}: {_error_message(response)}", status=response.status_code
        )
    try:
        body = response.json()
    except ValueError:
        raise ProviderUsageError(f"{what}: the answer is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ProviderUsageError(f"{what}: the answer has no 'data' list")
    return body


def _error_message(response: requests.Response) -> str:
    try:
        error = response.json().get("error")
        return str(error.get("message") if isinstance(error, dict) else error)[:200]
    except (ValueError, AttributeError):
        return response.text[:200] or response.reason


def _pages(session: requests.Session, url: str, params: dict, what: str) -> Iterable[dict]:
    """Every bucket of a paged report, following `next_page` until `has_more` is false."""
    page_params = dict(params)
    for _ in range(MAX_PAGES):
        body = _get(session, url, page_params, what)
        yield from body["data"]
        if not body.get("has_more"):
            return
        if not body.get("next_page"):
            raise ProviderUsageError(f"{what}: has_more without a next_page")
        page_params = {**params, "page": body["next_page"]}
    raise ProviderUsageError(f"{what}: more than {MAX_PAGES} pages")


def _optional_pages(session: requests.Session, url: str, params: dict, what: str) -> list[dict]:
    """A report a key or an organisation may not have (the cost reports): refused or absent is
    no buckets, so the import goes on without costs; any other failure fails it."""
    try:
        return list(_pages(session, url, params, what))
    except ProviderUsageError as error:
        if error.status in (403, 404):
            return []
        raise


def _bucket_day(bucket: dict, key: str) -> date:
    value = bucket[key]
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).date()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC).date()


def _int(value) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProviderUsageError(f"a token count is not a whole number: {value!r}")
    return value


def openai_report(source: UsageSource, first: date, last: date) -> Report:
    low, high = _bounds(first, last)
    base = source.base_url.rstrip("/")
    session = requests.Session()
    session.trust_env = False
    session.headers["Authorization"] = f"Bearer {source.admin_key}"
    report = Report("openai_usage_api")
    params = {
        "start_time": int(low.timestamp()),
        "end_time": int(high.timestamp()),
        "bucket_width": "1d",
        "group_by": "model",
        "limit": 31,
    }
    try:
        for endpoint in ("completions", "embeddings"):
            what = f"{source.name} usage/{endpoint}"
            for bucket in _pages(session, f"{base}/organization/usage/{endpoint}", params, what):
                day = _bucket_day(bucket, "start_time")
                for result in bucket.get("results") or []:
                    figures = report.at(day, str(result.get("model") or ""))
                    figures.requests = (figures.requests or 0) + _int(result.get("num_model_requests"))
                    figures.input_tokens += _int(result.get("input_tokens"))
                    figures.cached_tokens += _int(result.get("input_cached_tokens"))
                    figures.output_tokens += _int(result.get("output_tokens"))
        _openai_costs(session, f"{base}/organization/costs", params, report, source.name)
    except (KeyError, TypeError, ValueError) as error:
        raise ProviderUsageError(
            f"{source.name}: a bucket is malformed ({error.__class__.__name__}: {error})"
        ) from None
    return report


def _openai_costs(session, url: str, params: dict, report: Report, name: str) -> None:
    """Costs by line item ("gpt-4o-mini-2024-07-18, input"), summed per model. A key or an
    organisation without the Costs API leaves costs empty rather than failing the import."""
    costs: dict[tuple[date, str], Decimal] = {}
    for bucket in _optional_pages(session, url, {**params, "group_by": "line_item"}, f"{name} costs"):
        day = _bucket_day(bucket, "start_time")
        for result in bucket.get("results") or []:
            model = str(result.get("line_item") or "").split(",")[0].strip()
            amount = (result.get("amount") or {}).get("value")
            costs[(day, model)] = costs.get((day, model), Decimal(0)) + _decimal(amount)
    for (day, model), amount in costs.items():
        report.at(day, model).add_cost(amount)


def anthropic_report(source: UsageSource, first: date, last: date) -> Report:
    low, high = _bounds(first, last)
    base = source.base_url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    session = requests.Session()
    session.trust_env = False
    session.headers.update({"x-api-key": source.admin_key, "anthropic-version": "2023-06-01"})
    report = Report("anthropic_usage_report")
    params = {
        "starting_at": low.isoformat().replace("+00:00", "Z"),
        "ending_at": high.isoformat().replace("+00:00", "Z"),
        "bucket_width": "1d",
        "group_by[]": "model",
        "limit": 31,
    }
    try:
        what = f"{source.name} usage_report/messages"
        for bucket in _pages(session, f"{base}/organizations/usage_report/messages", params, what):
            day = _bucket_day(bucket, "starting_at")
            for result in bucket.get("results") or []:
                figures = report.at(day, str(result.get("model") or ""))
                creation = result.get("cache_creation") or {}
                writes = _int(creation.get("ephemeral_5m_input_tokens")) + _int(
                    creation.get("ephemeral_1h_input_tokens")
                )
                reads = _int(result.get("cache_read_input_tokens"))
                figures.input_tokens += _int(result.get("uncached_input_tokens")) + reads + writes
                figures.cached_tokens += reads
                figures.cache_write_tokens += writes
                figures.output_tokens += _int(result.get("output_tokens"))
        cost_params = {k: v for k, v in params.items() if k != "group_by[]"} | {"group_by[]": "description"}
        cost_url = f"{base}/organizations/cost_report"
        for bucket in _optional_pages(session, cost_url, cost_params, f"{source.name} costs"):
            day = _bucket_day(bucket, "starting_at")
            for result in bucket.get("results") or []:
                if result.get("model") and str(result.get("currency") or "USD").upper() == "USD":
                    report.at(day, str(result["model"])).add_cost(_decimal(result.get("amount")) / 100)
    except (KeyError, TypeError, ValueError) as error:
        raise ProviderUsageError(
            f"{source.name}: a bucket is malformed ({error.__class__.__name__}: {error})"
        ) from None
    return report


def _malformed(source: UsageSource, error: Exception) -> ProviderUsageError:
    return ProviderUsageError(f"{source.name}: a bucket is malformed ({error.__class__.__name__}: {error})")


def _decimal(value) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ProviderUsageError(f"an amount is not a number: {value!r}") from None


CSV_COLUMNS = (
    "day (YYYY-MM-DD), model, input_tokens, output_tokens; optional requests, cached_tokens, "
    "cache_write_tokens, cost_usd"
)


def csv_report(lines: Iterable[str]) -> Report:
    """A console export, one row per day and model (rows for the same pair are added up)."""
    reader = csv.DictReader(lines)
    header = {(name or "").strip().lower() for name in reader.fieldnames or []}
    missing = {"day", "model", "input_tokens", "output_tokens"} - header
    if missing:
        raise ProviderUsageError(f"line 1: missing column(s) {', '.join(sorted(missing))}; expected {CSV_COLUMNS}")
    report = Report("csv")
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        try:
            figures = report.at(date.fromisoformat(row["day"]), row["model"])
            if row.get("requests"):
                figures.requests = (figures.requests or 0) + int(row["requests"])
            figures.input_tokens += int(row["input_tokens"] or 0)
            figures.cached_tokens += int(row.get("cached_tokens") or 0)
            figures.cache_write_tokens += int(row.get("cache_write_tokens") or 0)
            figures.output_tokens += int(row["output_tokens"] or 0)
            if row.get("cost_usd"):
                figures.add_cost(Decimal(row["cost_usd"]))
        except (ValueError, InvalidOperation) as error:
            raise ProviderUsageError(f"line {line}: {error}") from None
    return report


def report_store(provider: str, first: date, last: date, report: Report) -> int:
    """Replace the provider's rows for [first, last] with the report's, in one transaction."""
    with transaction.atomic():
        ProviderUsage.objects.filter(provider=provider, day__gte=first, day__lte=last).delete()
        rows = [
            ProviderUsage(
                provider=provider,
                day=day,
                model=model,
                requests=f.requests,
                input_tokens=f.input_tokens,
                cached_tokens=f.cached_tokens,
                cache_write_tokens=f.cache_write_tokens,
                output_tokens=f.output_tokens,
                cost_usd=f.cost_usd,
                source=report.source,
            )
            for (day, model), f in sorted(report.figures.items())
            if first <= day <= last
        ]
        ProviderUsage.objects.bulk_create(rows)
        UsageImport.objects.create(provider=provider, first_day=first, last_day=last, ok=True, rows=len(rows))
    return len(rows)


def provider_usage_import(source: UsageSource, first: date, last: date) -> int:
    """Read the source's reports for [first, last] and store them; returns the rows stored.
    On failure the previous rows stay, the failed attempt is recorded, and the error is raised."""
    reader = anthropic_report if source.kind == Provider.Kind.ANTHROPIC else openai_report
    try:
        report = reader(source, first, last)
    except ProviderUsageError as error:
        UsageImport.objects.create(provider=source.name, first_day=first, last_day=last, ok=False, error=str(error))
        raise
    return report_store(source.name, first, last, report)
