"""What differs between the OpenAI and Anthropic wire formats: usage blocks and stream events."""

from __future__ import annotations

import re

from metering.pricing import Usage
from spendplane import fastjson


def _int(value) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def openai_usage(block: dict | None) -> Usage | None:
    """Usage from an OpenAI `usage` object (chat or embeddings)."""
    if not isinstance(block, dict):
        return None
    prompt_details = block.get("prompt_tokens_details") or {}
    completion_details = block.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=_int(block.get("prompt_tokens")),
        cached_tokens=_int(prompt_details.get("cached_tokens")),
        completion_tokens=_int(block.get("completion_tokens")),
        reasoning_tokens=_int(completion_details.get("reasoning_tokens")),
    )


def responses_usage(block: dict | None) -> Usage | None:
    """Usage from a Responses API `usage` object (input tokens include the cached ones)."""
    if not isinstance(block, dict):
        return None
    input_details = block.get("input_tokens_details") or {}
    output_details = block.get("output_tokens_details") or {}
    return Usage(
        prompt_tokens=_int(block.get("input_tokens")),
        cached_tokens=_int(input_details.get("cached_tokens")),
        completion_tokens=_int(block.get("output_tokens")),
        reasoning_tokens=_int(output_details.get("reasoning_tokens")),
    )


def anthropic_usage(block: dict | None) -> Usage | None:
    """Usage from an Anthropic `usage` object, converted so prompt tokens include cache reads/writes."""
    if not isinstance(block, dict):
        return None
    cache_read = _int(block.get("cache_read_input_tokens"))
    cache_write = _int(block.get("cache_creation_input_tokens"))
    return Usage(
        prompt_tokens=_int(block.get("input_tokens")) + cache_read + cache_write,
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
        completion_tokens=_int(block.get("output_tokens")),
    )


def split_sse_events(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete SSE events (each ending in a blank line) and the unfinished remainder."""
    buffer = buffer.replace(b"\r\n", b"\n")
    parts = buffer.split(b"\n\n")
    return [p + b"\n\n" for p in parts[:-1] if p.strip()], parts[-1]


def sse_data(event: bytes) -> bytes | None:
    """The concatenated `data:` payload of one SSE event."""
    lines = [line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


# A `"usage"` key whose value is not null. Inside a JSON string the quotes would be escaped, so
# a chunk this does not find carries no usage.
_USAGE_VALUE = re.compile(rb'"usage"\s*+:\s*+(?!null)')


class OpenAIStreamTracker:
    """Follows an OpenAI chat stream: collects the usage chunk and the text seen so far, and
    drops the usage chunk for a client that did not ask for it.

    Once content has been seen, a chunk without a usage value is kept as raw bytes and parsed only
    if the text is asked for (a stream that ends without usage): most chunks of a stream are
    relayed without being decoded.
    """

    def __init__(self, *, client_wants_usage: bool) -> None:
        self.client_wants_usage = client_wants_usage
        self.usage: Usage | None = None
        self._pending: list = []  # parsed chunks and raw chunk payloads, in stream order
        self.done = False
        self.saw_content = False

    def relay(self, event: bytes) -> bytes | None:
        """The bytes to send the client for this event, or None to drop it."""
        data = sse_data(event)
        if data is None:
            return event
        if data.strip() == b"[DONE]":
            self.done = True
            return event
        if self.saw_content and not _USAGE_VALUE.search(data):
            self._pending.append(data)
            return event
        try:
            chunk = fastjson.loads(data)
        except ValueError:
            return event
        if not isinstance(chunk, dict):
            return event
        self._pending.append(chunk)
        if not self.saw_content:
            self.saw_content = bool(_chunk_text(chunk))
        usage = chunk.get("usage")
        if not usage:
            return event
        self.usage = openai_usage(usage)
        if self.client_wants_usage:
            return event
        if not chunk.get("choices"):
            return None
        chunk = {key: value for key, value in chunk.items() if key != "usage"}
        return b"data: " + fastjson.dumps(chunk) + b"\n\n"

    @property
    def text(self) -> str:
        parts = []
        for item in self._pending:
            if isinstance(item, bytes):
                try:
                    item = fastjson.loads(item)
                except ValueError:
                    continue
            if isinstance(item, dict):
                parts += _chunk_text(item)
        return "".join(parts)


def _chunk_text(chunk: dict) -> list[str]:
    """The content and tool-call arguments one OpenAI stream chunk adds."""
    parts = []
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("text"), str) and choice["text"]:
            parts.append(choice["text"])  # the legacy completions endpoint
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if content:
            parts.append(content)
        for call in delta.get("tool_calls") or ():
            arguments = (call.get("function") or {}).get("arguments")
            if arguments:
                parts.append(arguments)
    return parts


class AnthropicStreamTracker:
    """Follows an Anthropic Messages stream: usage from message_start and message_delta, text."""

    def __init__(self) -> None:
        self.start_usage: dict = {}
        self.output_tokens: int | None = None
        self.text_parts: list[str] = []
        self.done = False
        self.saw_content = False

    def relay(self, event: bytes) -> bytes:
        data = sse_data(event)
        if data is None:
            return event
        try:
            payload = fastjson.loads(data)
        except ValueError:
            return event
        kind = payload.get("type") if isinstance(payload, dict) else None
        if kind == "message_start":
            self.start_usage = dict((payload.get("message") or {}).get("usage") or {})
        elif kind == "content_block_delta":
            delta = payload.get("delta") or {}
            text = delta.get("text") or delta.get("partial_json") or delta.get("thinking")
            if text:
                self.text_parts.append(text)
                self.saw_content = True
        elif kind == "message_delta":
            usage = payload.get("usage") or {}
            if isinstance(usage.get("output_tokens"), int):
                self.output_tokens = usage["output_tokens"]
            for key in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
                if isinstance(usage.get(key), int):
                    self.start_usage[key] = usage[key]
        elif kind == "message_stop":
            self.done = True
        return event

    @property
    def usage(self) -> Usage | None:
        if not self.done or self.output_tokens is None:
            return None
        return anthropic_usage({**self.start_usage, "output_tokens": self.output_tokens})

    @property
    def text(self) -> str:
        return "".join(self.text_parts)


# Events after which a Responses stream has nothing more to say; each carries the final response.
_RESPONSES_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
_RESPONSES_TEXT = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.delta",
    }
)


class ResponsesStreamTracker:
    """Follows a Responses API stream: the response id from `response.created`, the text deltas,
    and the usage of the final response (`response.completed`, or `incomplete` / `failed`)."""

    def __init__(self) -> None:
        self.response_id = ""
        self.text_parts: list[str] = []
        self.usage: Usage | None = None
        self.done = False
        self.saw_content = False
        self.failed = False

    def relay(self, event: bytes) -> bytes:
        data = sse_data(event)
        if data is None:
            return event
        try:
            payload = fastjson.loads(data)
        except ValueError:
            return event
        if not isinstance(payload, dict):
            return event
        kind = payload.get("type")
        if kind in _RESPONSES_TEXT:
            delta = payload.get("delta")
            if isinstance(delta, str) and delta:
                self.text_parts.append(delta)
                self.saw_content = True
        elif kind == "response.created":
            response = payload.get("response") or {}
            if isinstance(response.get("id"), str):
                self.response_id = response["id"]
        elif kind in _RESPONSES_FINAL:
            response = payload.get("response") or {}
            if not self.response_id and isinstance(response.get("id"), str):
                self.response_id = response["id"]
            self.usage = responses_usage(response.get("usage"))
            self.failed = kind == "response.failed"
            self.done = True
        elif kind == "error":
            self.failed = True
        return event

    @property
    def text(self) -> str:
        return "".join(self.text_parts)


def responses_text(data: dict) -> str:
    """The text a (non-streamed) Responses API answer carries: output text, refusals, tool-call
    arguments."""
    parts = []
    for item in data.get("output") or ():
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("arguments"), str):
            parts.append(item["arguments"])
        for part in item.get("content") or ():
            if isinstance(part, dict):
                text = part.get("text") or part.get("refusal")
                if isinstance(text, str):
                    parts.append(text)
    return "".join(parts)
