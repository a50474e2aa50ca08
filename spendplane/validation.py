"""Strict checks of proxied request bodies.

Strict on the fields the gateway relies on (a string where a string belongs: DRF's lenient
coercion would forward `"max_tokens": "5"` upstream), silent on every other field, which is
passed through untouched.
"""

from __future__ import annotations

from django.conf import settings

from . import fastjson
from .errors import ProxyError, bad_request

MAX_OUTPUT_TOKENS = 1_000_000


def parse_json_object(raw: bytes) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("The request body is not valid UTF-8.", code="invalid_body") from None
    if not text.strip():
        raise bad_request("The request body is empty; send a JSON object.", code="invalid_body")
    try:
        body = fastjson.loads(text, strict=True)
    except ValueError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_body")
    return body


def _type_error(param: str, expected: str) -> ProxyError:
    return bad_request(f"'{param}' must be {expected}.", param=param, code="invalid_type")


def _require_model(body: dict) -> str:
    model = body.get("model")
    if model is None:
        raise bad_request("'model' is required.", param="model", code="missing_required_parameter")
    if not isinstance(model, str) or not model.strip() or len(model) > 200:
        raise _type_error("model", "a non-empty string of at most 200 characters")
    return model


def _optional_bool(body: dict, param: str) -> bool:
    value = body.get(param, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _type_error(param, "a boolean")
    return value


def _optional_positive_int(body: dict, param: str) -> int | None:
    value = body.get(param)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(param, "an integer")
    if value < 1 or value > MAX_OUTPUT_TOKENS:
        raise bad_request(
            f"'{param}' must be between 1 and {MAX_OUTPUT_TOKENS}, got {value}.", param=param, code="invalid_value"
        )
    return value


def _messages(body: dict, *, allowed_roles: tuple[str, ...]) -> list:
    messages = body.get("messages")
    if messages is None:
        raise bad_request("'messages' is required.", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise _type_error("messages", "a non-empty array")
    limit = settings.SPENDPLANE_MAX_MESSAGES
    if len(messages) > limit:
        raise bad_request(f"'messages' has {len(messages)} items; the limit is {limit}.", param="messages")
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _type_error(param, "an object")
        role = message.get("role")
        if role not in allowed_roles:
            raise bad_request(
                f"'{param}.role' must be one of {', '.join(allowed_roles)}.",
                param=f"{param}.role",
                code="invalid_value",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise _type_error(f"{param}.content", "a string or an array of content parts")
    return messages


def validate_chat(body: dict) -> None:
    _require_model(body)
    _messages(body, allowed_roles=("system", "developer", "user", "assistant", "tool", "function"))
    _optional_bool(body, "stream")
    _optional_positive_int(body, "max_tokens")
    _optional_positive_int(body, "max_completion_tokens")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _type_error("stream_options", "an object")
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _type_error("tools", "an array")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _type_error("user", "a string")


def _text_or_tokens(value) -> bool:
    """A string, a non-empty array of strings, a token array, or an array of token arrays."""
    return isinstance(value, str) or (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(v, (str, int)) or (isinstance(v, list) and all(isinstance(t, int) for t in v)) for v in value
        )
    )


def validate_embeddings(body: dict) -> None:
    _require_model(body)
    value = body.get("input")
    if value is None:
        raise bad_request("'input' is required.", param="input", code="missing_required_parameter")
    if not _text_or_tokens(value) or value == "":
        raise _type_error("input", "a non-empty string, an array of strings, or token arrays")


def validate_messages(body: dict) -> None:
    _require_model(body)
    _messages(body, allowed_roles=("user", "assistant"))
    if body.get("max_tokens") is None:
        raise bad_request("'max_tokens' is required.", param="max_tokens", code="missing_required_parameter")
    _optional_positive_int(body, "max_tokens")
    _optional_bool(body, "stream")
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        raise _type_error("system", "a string or an array of text blocks")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _type_error("metadata", "an object")


def _optional_string(body: dict, param: str, *, max_length: int = 1_000_000) -> str | None:
    value = body.get(param)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise _type_error(param, "a string")
    return value


def validate_responses(body: dict) -> None:
    """OpenAI's Responses API: `input` is a string or an array of items (messages with string or
    part-array content, tool outputs, references); only what the gateway reads is checked."""
    _require_model(body)
    value = body.get("input")
    if value is not None and not isinstance(value, (str, list)):
        raise _type_error("input", "a string or an array of input items")
    if isinstance(value, list):
        limit = settings.SPENDPLANE_MAX_MESSAGES
        if len(value) > limit:
            raise bad_request(f"'input' has {len(value)} items; the limit is {limit}.", param="input")
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise _type_error(f"input[{index}]", "an object")
            content = item.get("content")
            if content is not None and not isinstance(content, (str, list)):
                raise _type_error(f"input[{index}].content", "a string or an array of content parts")
    if value is None and body.get("previous_response_id") is None and body.get("prompt") is None:
        raise bad_request("'input' is required.", param="input", code="missing_required_parameter")
    if value == "" or value == []:
        raise _type_error("input", "a non-empty string or array")
    _optional_string(body, "instructions")
    _optional_string(body, "previous_response_id", max_length=200)
    _optional_bool(body, "stream")
    _optional_bool(body, "store")
    _optional_bool(body, "background")
    _optional_positive_int(body, "max_output_tokens")
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _type_error("tools", "an array")
    _optional_string(body, "user", max_length=10_000)


def validate_completions(body: dict) -> None:
    """The legacy completions endpoint: `prompt` is a string, strings, or token arrays."""
    _require_model(body)
    value = body.get("prompt")
    if value is None:
        raise bad_request("'prompt' is required.", param="prompt", code="missing_required_parameter")
    if not _text_or_tokens(value):
        raise _type_error("prompt", "a string, an array of strings, or token arrays")
    _optional_bool(body, "stream")
    _optional_positive_int(body, "max_tokens")
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128):
        raise _type_error("n", "an integer from 1 to 128")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _type_error("stream_options", "an object")
    _optional_string(body, "user", max_length=10_000)


def validate_count_tokens(body: dict) -> None:
    """Anthropic's token counting: a Messages body without `max_tokens`."""
    _require_model(body)
    _messages(body, allowed_roles=("user", "assistant"))
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        raise _type_error("system", "a string or an array of text blocks")
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _type_error("tools", "an array")
