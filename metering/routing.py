"""Model → upstream resolution: the route table first, then the environment's default upstreams."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from .models import ModelRoute, Provider
from .process_cache import ProcessTable


@dataclass(frozen=True)
class Upstream:
    name: str
    kind: str
    base_url: str
    api_key: str
    upstream_model: str
    connect_timeout: float
    read_timeout: float
    max_retries: int = 0

    @property
    def speaks_openai(self) -> bool:
        return self.kind in (Provider.Kind.OPENAI, Provider.Kind.OPENAI_COMPATIBLE)

    @property
    def openai_base(self) -> str:
        """Base URL for OpenAI-format calls; Anthropic serves them under /v1 of its host."""
        base = self.base_url.rstrip("/")
        if self.kind == Provider.Kind.ANTHROPIC and not base.endswith("/v1"):
            return base + "/v1"
        return base


def _load_routes() -> dict[str, list[tuple[Provider, str]]]:
    table: dict[str, list[tuple[Provider, str]]] = {}
    routes = ModelRoute.objects.select_related("provider").filter(provider__is_active=True)
    for route in routes.order_by("model", "priority"):
        table.setdefault(route.model, []).append((route.provider, route.upstream_model or ""))
    return table


# Routes hold decrypted provider keys, so they are cached in process only, never in Redis.
_routes = ProcessTable(_load_routes)
_route_table = _routes.get
forget_routes = _routes.forget


def _from_provider(provider: Provider, upstream_model: str) -> Upstream:
    return Upstream(
        name=provider.name,
        kind=provider.kind,
        base_url=provider.base_url,
        api_key=provider.api_key or "",
        upstream_model=upstream_model,
        connect_timeout=provider.connect_timeout_s or settings.SPENDPLANE_UPSTREAM_CONNECT_TIMEOUT,
        read_timeout=provider.read_timeout_s or settings.SPENDPLANE_UPSTREAM_READ_TIMEOUT,
        max_retries=settings.SPENDPLANE_UPSTREAM_RETRIES if provider.max_retries is None else provider.max_retries,
    )


def default_upstream(model: str) -> Upstream:
    if model.lower().startswith("claude"):
        kind, name, base, key = (
            "anthropic",
            "anthropic-default",
            settings.ANTHROPIC_BASE_URL,
            settings.ANTHROPIC_API_KEY,
        )
    else:
        kind, name, base, key = "openai", "openai-default", settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY
    return Upstream(
        name=name,
        kind=kind,
        base_url=base,
        api_key=key,
        upstream_model=model,
        connect_timeout=settings.SPENDPLANE_UPSTREAM_CONNECT_TIMEOUT,
        read_timeout=settings.SPENDPLANE_UPSTREAM_READ_TIMEOUT,
        max_retries=settings.SPENDPLANE_UPSTREAM_RETRIES,
    )


def upstreams_for(model: str) -> list[Upstream]:
    """The upstreams serving `model`, primary first, then its fallbacks. With an empty route
    table every model goes to the defaults; once routes exist, a model no route names is unknown
    (an empty list). An exact route wins over the longest matching `prefix*` route."""
    table = _route_table()
    if not table:
        return [default_upstream(model)]
    entries = table.get(model)
    if entries is None:
        best = ""
        for pattern in table:
            if pattern.endswith("*") and model.startswith(pattern[:-1]) and len(pattern) > len(best):
                best = pattern
        entries = table.get(best, []) if best else []
    return [_from_provider(provider, upstream_model or model) for provider, upstream_model in entries]


def upstream_for(model: str) -> Upstream | None:
    """The primary upstream serving `model`, or None."""
    found = upstreams_for(model)
    return found[0] if found else None


def routed_models() -> list[str]:
    return sorted(m for m in _route_table() if not m.endswith("*"))
