"""The OpenAI- and Anthropic-compatible endpoints. Thin: each hands its request to the gateway."""

from __future__ import annotations

import time

import requests
from django.core.cache import cache
from django.http import JsonResponse
from drf_spectacular.utils import extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from metering.routing import default_upstream, routed_models, upstream_for

from . import gateway, upstreams
from .errors import ProxyError


class _NoNegotiation(BaseContentNegotiation):
    """The gateway writes its own responses: nothing to choose from the client's Accept header
    (DRF's negotiation parsed it on every request, a measurable share of the hot path)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ProxyView(APIView):
    # The gateway authenticates tenant keys itself; DRF's auth, throttles and parsers stay out.
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _NoNegotiation
    endpoint = ""

    def dispatch(self, request, *args, **kwargs):
        response = super().dispatch(request, *args, **kwargs)
        # DRF's request and its view point at each other, and the request at itself through its
        # parser context. Left so, each request's objects (about 50) outlived it until the cyclic
        # collector ran, in pauses of 15-45 ms at production's collector threshold.
        self.request.parser_context = None
        del self.request, self.response
        return response

    @extend_schema(exclude=True)
    def post(self, request):
        return gateway.handle(request._request, self.endpoint)


class ChatCompletionsView(ProxyView):
    endpoint = gateway.CHAT


class EmbeddingsView(ProxyView):
    endpoint = gateway.EMBEDDINGS


class MessagesView(ProxyView):
    endpoint = gateway.MESSAGES


class ModelsView(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    @extend_schema(exclude=True)
    def get(self, request):
        try:
            principal = gateway.authenticate(request._request)
        except ProxyError as error:
            return error.response()
        names = list(principal.allowed_models) or routed_models() or _default_upstream_models()
        created = int(time.time())
        data = [{"id": name, "object": "model", "created": created, "owned_by": _owner(name)} for name in sorted(names)]
        return JsonResponse({"object": "list", "data": data})


def _owner(model: str) -> str:
    upstream = upstream_for(model)
    return upstream.name if upstream else ""


def _default_upstream_models() -> list[str]:
    """With no route table, the models the default OpenAI-style upstream lists (cached a minute)."""
    names = cache.get("default-upstream-models")
    if names is None:
        upstream = default_upstream("")
        try:
            response = upstreams.session_for(upstream).get(
                f"{upstream.openai_base}/models", headers=upstreams.openai_headers(upstream), timeout=(2, 5)
            )
            response.raise_for_status()
            names = [m["id"] for m in response.json().get("data", []) if isinstance(m, dict) and "id" in m]
        except (requests.RequestException, ValueError, AttributeError):
            return []
        cache.set("default-upstream-models", names, 60)
    return names
