"""The mock upstream's usage and cost reports, answered from what it actually served.

Every answer the mock gives is recorded here per provider kind, UTC day and model, under the name
the provider bills it by (a dated snapshot for some models, as the real reports show), and
served in the shapes of OpenAI's organization Usage and Costs APIs and Anthropic's Admin usage
and cost reports, paged one daily bucket at a time so clients must follow `next_page`.

Switches, for tests and the demo (in process, or `POST /_mock/usage` with the same names):
- `unseen`: usage the gateway never saw (a key used elsewhere), added to a day's report;
- `skew`: a factor on one model's input tokens (a provider counting differently);
- `fault`: the next report request(s) answer 401, another status (500, 404, …), malformed JSON,
  or with a `next_page` that is gone (`missing_page`); an empty fault lets one request through.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from metering.pricing import Usage, list_price_rates

ADMIN_KEY = "mock-admin-key"
SNAPSHOTS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022"}
OPENAI_PATHS = {
    "/v1/organization/usage/completions": "completions",
    "/v1/organization/usage/embeddings": "embeddings",
    "/v1/organization/costs": "costs",
}
ANTHROPIC_PATHS = {"/v1/organizations/usage_report/messages": "messages", "/v1/organizations/cost_report": "costs"}


_COUNTS = ("requests", "input_tokens", "cached_tokens", "cache_write_tokens", "output_tokens")


@dataclass
class Served:
    requests: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    unseen_cost_usd: Decimal = Decimal(0)

    def cost_usd(self, kind: str, model: str, day: date) -> Decimal:
        """At the provider's list price of the day; the gateway prices each request alike."""
        unsnapped = next((name for name, billed in SNAPSHOTS.items() if billed == model), model)
        at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        rates = list_price_rates(unsnapped, kind, at, self.input_tokens // max(self.requests, 1))
        usage = Usage(
            prompt_tokens=self.input_tokens,
            cached_tokens=self.cached_tokens,
            cache_write_tokens=self.cache_write_tokens,
            completion_tokens=self.output_tokens,
        )
        return (rates.cost_for(usage) if rates else Decimal(0)) + self.unseen_cost_usd


class ServedUsage:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        # (kind, endpoint group, day, billed model) -> Served; kind "openai" or "anthropic"
        self.days: dict[tuple[str, str, date, str], Served] = {}
        self.skew: dict[str, float] = {}
        self.faults: list[str] = []

    def record(self, kind: str, model: str, *, input_tokens: int, cached: int = 0, cache_write: int = 0,
               output_tokens: int = 0, embeddings: bool = False) -> None:  # fmt: skip
        """One answer served (its usage billed, whether or not the client read it to the end).
        Only counts here: the answer's cost is priced when a report asks (the mock stays cheap)."""
        key = (
            kind,
            "embeddings" if embeddings else "completions",
            datetime.now(UTC).date(),
            SNAPSHOTS.get(model, model),
        )
        with self.lock:
            served = self.days.setdefault(key, Served())
            served.requests += 1
            served.input_tokens += input_tokens
            served.cached_tokens += cached
            served.cache_write_tokens += cache_write
            served.output_tokens += output_tokens

    def add_unseen(self, kind: str, model: str, day: date, *, requests: int, input_tokens: int, output_tokens: int,
                   cost_usd: Decimal = Decimal(0)) -> None:  # fmt: skip
        key = (kind, "completions", day, model)
        with self.lock:
            served = self.days.setdefault(key, Served())
            served.requests += requests
            served.input_tokens += input_tokens
            served.output_tokens += output_tokens
            served.unseen_cost_usd += cost_usd

    def save(self, path: str) -> None:
        """Keep what was served across restarts (the demo's ledger outlives its mock)."""
        with self.lock:
            rows = [
                {
                    "kind": kind,
                    "group": group,
                    "day": day.isoformat(),
                    "model": model,
                    **{name: getattr(served, name) for name in _COUNTS},
                    "unseen_cost_usd": str(served.unseen_cost_usd),
                }
                for (kind, group, day, model), served in self.days.items()
            ]
        with open(path, "w") as handle:
            json.dump(rows, handle)

    def load(self, path: str) -> None:
        try:
            with open(path) as handle:
                rows = json.load(handle)
        except (OSError, ValueError):
            return
        with self.lock:
            for row in rows:
                key = (row["kind"], row["group"], date.fromisoformat(row["day"]), row["model"])
                served = Served(**{name: int(row[name]) for name in _COUNTS})
                served.unseen_cost_usd = Decimal(row["unseen_cost_usd"])
                self.days[key] = served

    def configure(self, body: dict) -> None:
        with self.lock:
            self.skew.update({str(k): float(v) for k, v in (body.get("skew") or {}).items()})
            if body.get("fault"):
                self.faults.extend([str(body["fault"])] * int(body.get("times", 1)))
            if body.get("reset"):
                self.days.clear()
                self.skew.clear()
                self.faults.clear()
        for item in body.get("unseen") or []:
            self.add_unseen(
                item.get("kind", "openai"),
                item["model"],
                date.fromisoformat(item.get("day") or datetime.now(UTC).date().isoformat()),
                requests=int(item.get("requests", 1)),
                input_tokens=int(item.get("input_tokens", 0)),
                output_tokens=int(item.get("output_tokens", 0)),
                cost_usd=Decimal(str(item.get("cost_usd", 0))),
            )

    def _fault(self) -> str:
        with self.lock:
            return self.faults.pop(0) if self.faults else ""

    def _buckets(self, kind: str, group: str | None, first: date, last: date) -> list[tuple[date, list]]:
        with self.lock:
            items = [(k, v) for k, v in self.days.items() if k[0] == kind and (group is None or k[1] == group)]
            skew = dict(self.skew)
        buckets = []
        day = first
        while day <= last:
            rows = []
            for (_, _, served_day, model), served in sorted(items, key=lambda kv: kv[0][3]):
                if served_day == day:
                    rows.append((model, served, skew.get(model, 1.0), served.cost_usd(kind, model, day)))
            buckets.append((day, rows))
            day += timedelta(days=1)
        return buckets

    def answer(self, path: str, headers) -> tuple[int, bytes]:
        """(status, body) for a report request, or (0, b"") when the path is not a report."""
        url = urlsplit(path)
        kind = "openai" if url.path in OPENAI_PATHS else "anthropic" if url.path in ANTHROPIC_PATHS else ""
        if not kind:
            return 0, b""
        key = headers.get("Authorization", "") if kind == "openai" else "Bearer " + headers.get("x-api-key", "")
        fault = self._fault()
        if key != f"Bearer {ADMIN_KEY}" or fault == "401":
            return 401, _error(kind, "authentication_error", "Invalid admin API key.")
        if fault.isdigit():  # 500, 503, or 403 / 404 for a report this key or organisation lacks
            return int(fault), _error(kind, "server_error", f"The mock provider's usage service answered {fault}.")
        if fault == "malformed":
            return 200, b'{"object": "page", "data": [{"start_time": '
        query = {name: values[-1] for name, values in parse_qs(url.query).items()}
        token = query.get("page", "")
        if fault == "missing_page" and not token:
            with self.lock:  # it strikes when a next page is asked for
                self.faults.insert(0, fault)
            fault = ""
        if fault == "missing_page" or (token and not token.removeprefix("page_").isdigit()):
            return 400, _error(kind, "invalid_request_error", f"Invalid page token {token!r}.")
        page = int(token.removeprefix("page_") or 0)
        if kind == "openai":
            first = datetime.fromtimestamp(int(query["start_time"]), UTC).date()
            last = datetime.fromtimestamp(int(query.get("end_time", query["start_time"])), UTC).date() - timedelta(
                days=1
            )
            group = OPENAI_PATHS[url.path]
            buckets = self._buckets("openai", None if group == "costs" else group, first, max(first, last))
            body = _openai_page(group, buckets, page)
        else:
            first = datetime.fromisoformat(query["starting_at"].replace("Z", "+00:00")).date()
            last = datetime.fromisoformat(query["ending_at"].replace("Z", "+00:00")).date() - timedelta(days=1)
            group = ANTHROPIC_PATHS[url.path]
            body = _anthropic_page(group, self._buckets("anthropic", None, first, max(first, last)), page)
        return 200, json.dumps(body).encode()


def _error(kind: str, error_type: str, message: str) -> bytes:
    if kind == "anthropic":
        return json.dumps({"type": "error", "error": {"type": error_type, "message": message}}).encode()
    return json.dumps({"error": {"message": message, "type": error_type, "code": None, "param": None}}).encode()


def _paged(buckets: list, page: int, data: dict) -> dict:
    more = page + 1 < len(buckets)
    return {**data, "has_more": more, "next_page": f"page_{page + 1}" if more else None}


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _openai_page(group: str, buckets: list, page: int) -> dict:
    day, rows = buckets[page] if page < len(buckets) else (None, [])
    results = []
    for model, served, skew, cost in rows:
        if group == "costs":
            results.append(
                {
                    "object": "organization.costs.result",
                    "amount": {"value": float(cost), "currency": "usd"},
                    "line_item": f"{model}, input and output",
                    "project_id": None,
                }
            )
            continue
        results.append(
            {
                "object": f"organization.usage.{group}.result",
                "input_tokens": round(served.input_tokens * skew),
                "input_cached_tokens": served.cached_tokens,
                "output_tokens": served.output_tokens,
                "input_audio_tokens": 0,
                "output_audio_tokens": 0,
                "num_model_requests": served.requests,
                "project_id": None,
                "user_id": None,
                "api_key_id": None,
                "model": model,
                "batch": False,
            }
        )
    data = []
    if day is not None:
        start = _midnight(day)
        end = start + timedelta(days=1)
        data.append(
            {
                "object": "bucket",
                "start_time": int(start.timestamp()),
                "end_time": int(end.timestamp()),
                "results": results,
            }
        )
    return _paged(buckets, page, {"object": "page", "data": data})


def _anthropic_page(group: str, buckets: list, page: int) -> dict:
    day, rows = buckets[page] if page < len(buckets) else (None, [])
    results = []
    for model, served, skew, cost in rows:
        if group == "costs":
            results.append(
                {
                    "currency": "USD",
                    "amount": str(cost * 100),  # in cents, as a decimal string
                    "workspace_id": None,
                    "description": f"{model} usage",
                    "cost_type": "tokens",
                    "model": model,
                    "token_type": None,
                    "service_tier": "standard",
                }
            )
            continue
        uncached = round((served.input_tokens - served.cached_tokens - served.cache_write_tokens) * skew)
        results.append(
            {
                "uncached_input_tokens": uncached,
                "cache_read_input_tokens": served.cached_tokens,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": served.cache_write_tokens,
                    "ephemeral_1h_input_tokens": 0,
                },
                "output_tokens": served.output_tokens,
                "server_tool_use": {"web_search_requests": 0},
                "model": model,
                "api_key_id": None,
                "workspace_id": None,
                "service_tier": "standard",
                "context_window": "0-200k",
            }
        )
    data = []
    if day is not None:
        start = _midnight(day)
        data.append(
            {
                "starting_at": start.isoformat().replace("+00:00", "Z"),
                "ending_at": (start + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
                "results": results,
            }
        )
    return _paged(buckets, page, {"data": data})
