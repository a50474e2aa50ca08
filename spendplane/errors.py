"""Proxy errors, shaped the way each SDK expects so it raises its own exception class."""

from __future__ import annotations

import json

from django.http import HttpResponse

# OpenAI SDKs pick the exception class from the status; Anthropic's body carries a type per status.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


class ProxyError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def openai_body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}

    def anthropic_body(self) -> dict:
        kind = _ANTHROPIC_TYPES.get(self.status, "api_error" if self.status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": self.message, "code": self.code}}

    def response(self, *, anthropic: bool = False) -> HttpResponse:
        body = self.anthropic_body() if anthropic else self.openai_body()
        response = HttpResponse(json.dumps(body), status=self.status, content_type="application/json")
        for name, value in self.headers.items():
            response[name] = value
        return response


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> ProxyError:
    return ProxyError(400, message, param=param, code=code)
