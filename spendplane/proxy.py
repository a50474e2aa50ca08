"""The OpenAI- and Anthropic-compatible endpoints. Thin: each hands its request to the gateway."""

from __future__ import annotations

import time

import requests
from django.core.cache import cache
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
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


class V1View(APIView):
    """An endpoint under /v1/: the gateway authenticates tenant keys itself (DRF's auth, throttles
    and parsers stay out) and answers a wrong method in the SDKs' error shape, never DRF's."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _NoNegotiation

    def http_method_not_allowed(self, request, *args, **kwargs):
        allowed = ", ".join(m for m in self.allowed_methods if m not in ("OPTIONS", "HEAD"))
        error = ProxyError(
            405,
            f"{request.method} is not allowed on {request.path}; use {allowed}.",
            code="method_not_allowed",
            headers={"Allow": allowed},
        )
        return error.response(anthropic=is_anthropic_path(request.path))


def is_anthropic_path(path: str) -> bool:
    return path == "/v1/messages" or path.startswith("/v1/messages/")


class ProxyView(V1View):
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


class CountTokensView(ProxyView):
    endpoint = gateway.COUNT_TOKENS


class ResponsesView(ProxyView):
    endpoint = gateway.RESPONSES


class CompletionsView(ProxyView):
    endpoint = gateway.COMPLETIONS


class ResponseView(V1View):
    """One stored response of the tenant's: retrieve or delete it."""

    @extend_schema(exclude=True)
    def get(self, request, response_id: str):
        return gateway.relay_stored_response(request._request, response_id, method="GET")

    @extend_schema(exclude=True)
    def delete(self, request, response_id: str):
        return gateway.relay_stored_response(request._request, response_id, method="DELETE")


class ResponseInputItemsView(V1View):
    @extend_schema(exclude=True)
    def get(self, request, response_id: str):
        return gateway.relay_stored_response(request._request, response_id, method="GET", suffix="/input_items")


class ResponseCancelView(V1View):
    @extend_schema(exclude=True)
    def post(self, request, response_id: str):
        return gateway.relay_stored_response(request._request, response_id, method="POST", suffix="/cancel")


def _model_object(name: str, created: int) -> dict:
    return {"id": name, "object": "model", "created": created, "owned_by": _owner(name)}


def _visible_models(principal) -> list[str]:
    return list(principal.allowed_models) or routed_models() or _default_upstream_models()


class ModelsView(V1View):
    @extend_schema(exclude=True)
    def get(self, request):
        try:
            principal = gateway.authenticate(request._request)
        except ProxyError as error:
            return error.response()
        created = int(time.time())
        return JsonResponse(
            {"object": "list", "data": [_model_object(name, created) for name in sorted(_visible_models(principal))]}
        )


class ModelView(V1View):
    """One model the tenant may call, as OpenAI's `GET /v1/models/{model}` answers it."""

    @extend_schema(exclude=True)
    def get(self, request, model: str):
        try:
            principal = gateway.authenticate(request._request)
            if not principal.may_call(model) or model not in _visible_models(principal):
                raise ProxyError(
                    404,
                    f"The model '{model}' does not exist or you do not have access to it.",
                    code="model_not_found",
                    param="model",
                )
        except ProxyError as error:
            return error.response()
        return JsonResponse(_model_object(model, int(time.time())))


@csrf_exempt
def unknown_v1_path(request, rest: str | None = None):
    """Anything else under /v1/: a JSON 404 in the shape of the SDK that would call it."""
    error = ProxyError(404, f"Unknown endpoint: {request.method} {request.path}.", code="unknown_url")
    return error.response(anthropic=is_anthropic_path(request.path))


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
