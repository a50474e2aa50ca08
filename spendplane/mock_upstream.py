"""A bundled OpenAI- and Anthropic-compatible upstream for the demo, the tests and the benchmark.

Realistic usage blocks (cached and reasoning tokens included), SSE streaming over chunked
transfer encoding, a configurable delay, and fault modes. A fault is chosen for every request
(`--fault`) or for one request by writing `MOCK_FAULT=<mode>` in its last message, where mode is
one of: 500, 503, 429, 400, timeout (sleeps MOCK_SLEEP=<s>, default 3, before answering), stall
(a stream sleeps as long halfway through, then ends normally), malformed, cut, nousage.
`MOCK_FAIL_FIRST=<n>` beside a fault applies it only to the first n requests carrying the same
last message, so a retry can succeed. `MOCK_LATENCY_MS=<ms>` delays one answer;
`MOCK_CHUNK_DELAY_MS=<ms>` slows one stream; `MOCK_REPLY_TOKENS=<n>` lengthens a reply past the
default 24 tokens (up to max_tokens).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from metering import tokens

from .mock_provider_usage import ServedUsage

OPENAI_MODELS = [
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "gpt-3.5-turbo-instruct",
    "o3-mini",
    "text-embedding-3-small",
    "mock-unpriced-1",
]
ANTHROPIC_MODELS = ["claude-3-5-haiku-latest", "claude-sonnet-4-0"]
_FAULT = re.compile(r"MOCK_FAULT=(\w+)")
_FAIL_FIRST = re.compile(r"MOCK_FAIL_FIRST=(\d+)")
_REPLY_TOKENS = re.compile(r"MOCK_REPLY_TOKENS=(\d+)")
_LATENCY = re.compile(r"MOCK_LATENCY_MS=(\d+)")
_CHUNK_DELAY = re.compile(r"MOCK_CHUNK_DELAY_MS=(\d+)")
# Each word is one token (o200k and cl100k), so a reply of max_tokens words costs exactly max_tokens.
_WORDS = [
    "the",
    "gateway",
    "sends",
    "this",
    "mock",
    "answer",
    "one",
    "word",
    "at",
    "a",
    "time",
    "so",
    "every",
    "test",
    "sees",
    "a",
    "real",
    "stream",
    "of",
    "text",
]
DEFAULT_REPLY_TOKENS = 24
REASONING_TOKENS = 64
EMBEDDING_DIMENSIONS = 8


def _sleep_seconds(body: dict) -> float:
    return float(re.search(r"MOCK_SLEEP=([\d.]+)", _last_text(body) + " MOCK_SLEEP=3").group(1))


def _last_text(body: dict) -> str:
    messages = body.get("messages") or (body["input"] if isinstance(body.get("input"), list) else [])
    if messages and isinstance(messages[-1], dict):
        content = messages[-1].get("content", messages[-1].get("output"))
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    value = body.get("input", body.get("prompt"))
    if isinstance(value, list) and value and isinstance(value[-1], str):
        return value[-1]
    return value if isinstance(value, str) else ""


def _reply_words(body: dict) -> list[str]:
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
    limit = limit or DEFAULT_REPLY_TOKENS
    longer = _REPLY_TOKENS.search(_last_text(body))
    count = max(1, min(int(limit), int(longer.group(1)) if longer else DEFAULT_REPLY_TOKENS))
    return [_WORDS[i % len(_WORDS)] for i in range(count)]


def _cached_part(prompt_tokens: int) -> int:
    """Like OpenAI: nothing under 1,024 tokens, then half the prompt in 128-token steps."""
    return 0 if prompt_tokens < 1024 else (prompt_tokens // 2 // 128) * 128


class MockState:
    def __init__(
        self, *, latency_ms: float = 0, chunk_delay_ms: float = 0, fault: str = "", stamp_chunks: bool = False
    ) -> None:
        self.latency_ms = latency_ms
        self.chunk_delay_ms = chunk_delay_ms
        self.fault = fault
        # Each stream chunk carries `mock_sent_at` (time.monotonic() as it was written), so a client on
        # this machine can tell how long a chunk took to reach it (bench/many_streams.py).
        self.stamp_chunks = stamp_chunks
        self.requests: deque = deque(maxlen=500)
        # Responses API answers kept for retrieval (`store`), by id: the response and its input items.
        self.responses: dict[str, tuple[dict, list]] = {}
        self.times_seen: dict[str, int] = {}
        self.lock = threading.Lock()
        # What it served, for its usage and cost reports (spendplane/mock_provider_usage.py).
        self.served = ServedUsage()
        # OTLP/HTTP trace exports received (protobuf bodies), newest last.
        self.traces: deque = deque(maxlen=200)


class MockHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "spendplane-mock/1"
    # Headers and body go out in separate writes; without this, Nagle plus delayed ACKs add 40 ms.
    disable_nagle_algorithm = True
    state: MockState

    def handle(self) -> None:
        # A client hanging up (wrk ending a run, a test closing a stream) is not an error here.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()

    def log_message(self, format, *args) -> None:
        pass

    # --- plumbing -------------------------------------------------------------------------
    def _json(self, status: int, payload, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str, code: str | None = None, *, anthropic: bool = False):
        if anthropic:
            return self._json(status, {"type": "error", "error": {"type": kind, "message": message}})
        return self._json(status, {"error": {"message": message, "type": kind, "code": code, "param": None}})

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
        delay = self.chunk_delay_ms
        if delay:
            time.sleep(delay / 1000)

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _cut(self) -> None:
        """Drop the connection mid-response, as a crashed provider would."""
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(2)

    # --- routing --------------------------------------------------------------------------
    def do_GET(self) -> None:
        status, report = self.state.served.answer(self.path, self.headers)
        if status:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(report)))
            self.end_headers()
            self.wfile.write(report)
            return None
        stored = _STORED.match(self.path.split("?")[0])
        if stored:
            return self._stored_response(stored.group(1), stored.group(2) or "")
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "mock"} for m in OPENAI_MODELS]
            return self._json(200, {"object": "list", "data": data})
        if self.path == "/_mock/requests":
            with self.state.lock:
                return self._json(200, list(self.state.requests))
        return self._error(404, "Not found", "invalid_request_error")

    def do_DELETE(self) -> None:
        stored = _STORED.match(self.path.split("?")[0])
        if not stored or stored.group(2):
            return self._error(404, "Not found", "invalid_request_error")
        with self.state.lock:
            found = self.state.responses.pop(stored.group(1), None)
        if found is None:
            return self._response_not_found(stored.group(1))
        return self._json(200, {"id": stored.group(1), "object": "response.deleted", "deleted": True})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        stored = _STORED.match(self.path.split("?")[0])
        if stored and stored.group(2) == "/cancel":
            if stored.group(1) not in self.state.responses:
                return self._response_not_found(stored.group(1))
            return self._error(400, "Only background responses can be cancelled.", "invalid_request_error")
        if self.path == "/_mock/reset":
            with self.state.lock:
                self.state.requests.clear()
            return self._json(200, {"ok": True})
        if self.path == "/v1/traces":  # an OTLP/HTTP collector's door, for the demo and the benchmark
            with self.state.lock:
                self.state.traces.append(raw)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if self.path == "/_mock/usage":
            try:
                self.state.served.configure(json.loads(raw or b"{}"))
            except (ValueError, KeyError, TypeError) as error:
                return self._error(400, f"Bad usage switch: {error}", "invalid_request_error")
            return self._json(200, {"ok": True})
        anthropic = self.path.rstrip("/") in ("/v1/messages", "/v1/messages/count_tokens")
        try:
            body = json.loads(raw)
        except ValueError:
            return self._error(400, "Invalid JSON", "invalid_request_error", anthropic=anthropic)
        with self.state.lock:
            self.state.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
        latency = _LATENCY.search(_last_text(body))
        latency_ms = float(latency.group(1)) if latency else self.state.latency_ms
        if latency_ms:
            time.sleep(latency_ms / 1000)
        delay = _CHUNK_DELAY.search(_last_text(body))
        self.chunk_delay_ms = float(delay.group(1)) if delay else self.state.chunk_delay_ms
        text = _last_text(body)
        match = _FAULT.search(text)
        fault = match.group(1) if match else self.state.fault
        fail_first = _FAIL_FIRST.search(text)
        if fail_first:
            with self.state.lock:
                seen = self.state.times_seen[text] = self.state.times_seen.get(text, 0) + 1
            if seen > int(fail_first.group(1)):
                fault = ""
        if fault in ("500", "503"):
            return self._error(
                int(fault), "The mock provider had an internal error.", "server_error", anthropic=anthropic
            )
        if fault == "429":
            if anthropic:
                payload = {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached."}}
            else:
                payload = {
                    "error": {
                        "message": "Rate limit reached.",
                        "type": "rate_limit_error",
                        "code": "rate_limit_exceeded",
                        "param": None,
                    }
                }
            return self._json(429, payload, headers={"retry-after": "1"})
        if fault == "400":
            return self._error(
                400, "The mock provider rejected this request.", "invalid_request_error", anthropic=anthropic
            )
        if fault == "timeout":
            time.sleep(_sleep_seconds(body))
        if fault == "malformed":
            data = b'{"id": "broken", "choices": [ this is not json'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        if self.path.rstrip("/") == "/v1/messages/count_tokens":
            return self._count_tokens(body)
        if anthropic:
            return self._messages(body, fault)
        if self.path.rstrip("/") in ("/v1/chat/completions", "/chat/completions"):
            return self._chat(body, fault)
        if self.path.rstrip("/") in ("/v1/responses", "/responses"):
            return self._responses(body, fault)
        if self.path.rstrip("/") in ("/v1/completions", "/completions"):
            return self._completions(body, fault)
        if self.path.rstrip("/") in ("/v1/embeddings", "/embeddings"):
            return self._embeddings(body)
        return self._error(404, f"Unknown path {self.path}", "invalid_request_error")

    # --- OpenAI ---------------------------------------------------------------------------
    def _chat(self, body: dict, fault: str) -> None:
        model = body.get("model")
        if model not in OPENAI_MODELS:
            return self._error(404, f"The model `{model}` does not exist.", "invalid_request_error", "model_not_found")
        words = _reply_words(body)
        text = " ".join(words)
        prompt = tokens.count_chat_prompt(model, body.get("messages"), body.get("tools"))
        reasoning = REASONING_TOKENS if model.startswith("o") else 0
        completion = tokens.count_text(text, model) + reasoning
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": _cached_part(prompt), "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0},
        }
        self.state.served.record(
            "openai", model, input_tokens=prompt, cached=_cached_part(prompt), output_tokens=completion
        )
        ident = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        if not body.get("stream"):
            payload = {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": usage,
            }
            if fault == "nousage":
                del payload["usage"]
            if fault == "cut":
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                return self._cut()
            return self._json(200, payload)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and fault != "nousage"
        base = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model}

        def event(choices, usage_value=None) -> bytes:
            chunk = {**base, "choices": choices}
            if include_usage:
                chunk["usage"] = usage_value
            if self.state.stamp_chunks:
                chunk["mock_sent_at"] = time.monotonic()
            return b"data: " + json.dumps(chunk).encode() + b"\n\n"

        self._start_stream()
        self._chunk(event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]))
        for position, word in enumerate(words):
            if fault == "cut" and position == len(words) // 2:
                return self._cut()
            if fault == "stall" and position == len(words) // 2:
                time.sleep(_sleep_seconds(body))
            piece = word if position == 0 else " " + word
            self._chunk(event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}]))
        self._chunk(event([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        if include_usage:
            self._chunk(event([], usage))
        self._chunk(b"data: [DONE]\n\n")
        self._end_stream()
        return None

    def _embeddings(self, body: dict) -> None:
        model = body.get("model")
        if model not in OPENAI_MODELS:
            return self._error(404, f"The model `{model}` does not exist.", "invalid_request_error", "model_not_found")
        value = body.get("input")
        items = value if isinstance(value, list) and value and not isinstance(value[0], int) else [value]
        prompt = tokens.count_embedding_input(model, value)
        self.state.served.record("openai", model, input_tokens=prompt, embeddings=True)
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": [round(0.01 * (i + d), 4) for d in range(EMBEDDING_DIMENSIONS)],
            }
            for i in range(len(items))
        ]
        return self._json(
            200,
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
            },
        )

    def _completions(self, body: dict, fault: str) -> None:
        """The legacy completions endpoint: `n` choices of text for one prompt."""
        model = body.get("model")
        if model not in OPENAI_MODELS:
            return self._error(404, f"The model `{model}` does not exist.", "invalid_request_error", "model_not_found")
        words = _reply_words({**body, "max_tokens": body.get("max_tokens") or 16})
        text = " ".join(words)
        choices = max(1, int(body.get("n") or 1))
        prompt = tokens.count_embedding_input(model, body.get("prompt"))
        completion = tokens.count_text(text, model) * choices
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        self.state.served.record("openai", model, input_tokens=prompt, output_tokens=completion)
        base = {"id": "cmpl-" + uuid.uuid4().hex[:24], "object": "text_completion", "created": int(time.time())}
        base["model"] = model
        if not body.get("stream"):
            payload = {
                **base,
                "choices": [
                    {"text": text, "index": i, "logprobs": None, "finish_reason": "length"} for i in range(choices)
                ],
                "usage": usage,
            }
            if fault == "nousage":
                del payload["usage"]
            return self._json(200, payload)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and fault != "nousage"

        def event(choices_value, usage_value=None) -> bytes:
            chunk = {**base, "choices": choices_value}
            if include_usage:
                chunk["usage"] = usage_value
            return b"data: " + json.dumps(chunk).encode() + b"\n\n"

        self._start_stream()
        for position, word in enumerate(words):
            if fault == "cut" and position == len(words) // 2:
                return self._cut()
            piece = word if position == 0 else " " + word
            self._chunk(
                event([{"text": piece, "index": i, "logprobs": None, "finish_reason": None} for i in range(choices)])
            )
        last = [{"text": "", "index": i, "logprobs": None, "finish_reason": "length"} for i in range(choices)]
        self._chunk(event(last))
        if include_usage:
            self._chunk(event([], usage))
        self._chunk(b"data: [DONE]\n\n")
        self._end_stream()
        return None

    # --- OpenAI Responses -----------------------------------------------------------------
    def _response_not_found(self, response_id: str) -> None:
        return self._error(
            404, f"Response with id '{response_id}' not found.", "invalid_request_error", "response_not_found"
        )

    def _stored_response(self, response_id: str, suffix: str) -> None:
        with self.state.lock:
            found = self.state.responses.get(response_id)
        if found is None:
            return self._response_not_found(response_id)
        response, items = found
        if suffix == "/input_items":
            data = [_input_item(f"msg_{response_id}_{i}", item) for i, item in enumerate(items)]
            page = {"object": "list", "data": data, "has_more": False}
            page.update(first_id=data[0]["id"] if data else None, last_id=data[-1]["id"] if data else None)
            return self._json(200, page)
        return self._json(200, response)

    def _responses(self, body: dict, fault: str) -> None:
        """OpenAI's Responses API: one message of output text, usage as that API reports it (input
        includes an earlier response's whole conversation when it continues one)."""
        model = body.get("model")
        if model not in OPENAI_MODELS:
            return self._error(404, f"The model `{model}` does not exist.", "invalid_request_error", "model_not_found")
        items = tokens.responses_input_as_messages(body.get("input"))
        history: list = []
        previous = body.get("previous_response_id")
        if previous:
            with self.state.lock:
                found = self.state.responses.get(previous)
            if found is None:
                return self._error(
                    400,
                    f"Previous response with id '{previous}' not found.",
                    "invalid_request_error",
                    "previous_response_not_found",
                )
            earlier, earlier_items = found
            history = [*earlier_items, {"role": "assistant", "content": _output_text(earlier)}]
        words = _reply_words(body)
        text = " ".join(words)
        prompt = tokens.count_chat_prompt(model, history + items, body.get("tools"), body.get("instructions"))
        reasoning = REASONING_TOKENS if model.startswith("o") else 0
        output = tokens.count_text(text, model) + reasoning
        usage = {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": _cached_part(prompt)},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + output,
        }
        self.state.served.record(
            "openai", model, input_tokens=prompt, cached=_cached_part(prompt), output_tokens=output
        )
        ident = "resp_" + uuid.uuid4().hex
        message_id = "msg_" + uuid.uuid4().hex[:24]
        message = {
            "id": message_id,
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
        response = {
            "id": ident,
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": model,
            "output": [message],
            "usage": None if fault == "nousage" else usage,
            "instructions": body.get("instructions"),
            "previous_response_id": previous,
            "max_output_tokens": body.get("max_output_tokens"),
            "parallel_tool_calls": True,
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "text": body.get("text") or {"format": {"type": "text"}},
            "store": body.get("store", True),
            "metadata": body.get("metadata") or {},
            "error": None,
            "incomplete_details": None,
            "temperature": 1.0,
            "top_p": 1.0,
        }
        if response["store"]:
            with self.state.lock:
                self.state.responses[ident] = (response, history + items)
        if not body.get("stream"):
            return self._json(200, response)
        sequence = iter(range(1_000_000))

        def event(kind: str, **payload) -> bytes:
            data = {"type": kind, "sequence_number": next(sequence), **payload}
            return f"event: {kind}\ndata: ".encode() + json.dumps(data).encode() + b"\n\n"

        pending = {**response, "status": "in_progress", "output": [], "usage": None}
        at = {"item_id": message_id, "output_index": 0, "content_index": 0}
        self._start_stream()
        self._chunk(event("response.created", response=pending))
        self._chunk(event("response.in_progress", response=pending))
        self._chunk(
            event(
                "response.output_item.added",
                output_index=0,
                item={**message, "status": "in_progress", "content": []},
            )
        )
        part = {"type": "output_text", "text": "", "annotations": []}
        self._chunk(event("response.content_part.added", part=part, **at))
        for position, word in enumerate(words):
            if fault == "cut" and position == len(words) // 2:
                return self._cut()
            if fault == "stall" and position == len(words) // 2:
                time.sleep(_sleep_seconds(body))
            piece = word if position == 0 else " " + word
            self._chunk(event("response.output_text.delta", delta=piece, logprobs=[], **at))
        self._chunk(event("response.output_text.done", text=text, logprobs=[], **at))
        self._chunk(event("response.content_part.done", part={**part, "text": text}, **at))
        self._chunk(event("response.output_item.done", output_index=0, item=message))
        self._chunk(event("response.completed", response=response))
        self._end_stream()
        return None

    # --- Anthropic ------------------------------------------------------------------------
    def _count_tokens(self, body: dict) -> None:
        model = body.get("model")
        if model not in ANTHROPIC_MODELS:
            return self._error(404, f"model: {model}", "not_found_error", anthropic=True)
        prompt = tokens.count_chat_prompt(model, body.get("messages"), body.get("tools"), body.get("system"))
        return self._json(200, {"input_tokens": prompt})

    def _messages(self, body: dict, fault: str) -> None:
        model = body.get("model")
        if model not in ANTHROPIC_MODELS:
            return self._error(404, f"model: {model}", "not_found_error", anthropic=True)
        words = _reply_words(body)
        text = " ".join(words)
        prompt = tokens.count_chat_prompt(model, body.get("messages"), body.get("tools"), body.get("system"))
        cache_read = _cached_part(prompt)
        output = tokens.count_text(text, model)
        usage = {
            "input_tokens": prompt - cache_read,
            "cache_read_input_tokens": cache_read,
            "cache_creation_input_tokens": 0,
            "output_tokens": output,
        }
        self.state.served.record("anthropic", model, input_tokens=prompt, cached=cache_read, output_tokens=output)
        ident = "msg_" + uuid.uuid4().hex[:24]
        message = {
            "id": ident,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            return self._json(200, message)

        def event(name: str, payload: dict) -> bytes:
            return f"event: {name}\ndata: ".encode() + json.dumps(payload).encode() + b"\n\n"

        self._start_stream()
        start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
        self._chunk(event("message_start", {"type": "message_start", "message": start}))
        self._chunk(
            event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        for position, word in enumerate(words):
            if fault == "cut" and position == len(words) // 2:
                return self._cut()
            if fault == "stall" and position == len(words) // 2:
                time.sleep(_sleep_seconds(body))
            piece = word if position == 0 else " " + word
            self._chunk(
                event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                )
            )
        self._chunk(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        self._chunk(
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": output},
                },
            )
        )
        self._chunk(event("message_stop", {"type": "message_stop"}))
        self._end_stream()
        return None


_STORED = re.compile(r"^(?:/v1)?/responses/([^/]+)(/input_items|/cancel)?/?$")


def _input_item(ident: str, message: dict) -> dict:
    """A conversation turn as the input-items list shows it: a message of content parts."""
    content = message.get("content")
    if isinstance(content, str):
        kind = "output_text" if message.get("role") == "assistant" else "input_text"
        content = [{"type": kind, "text": content}]
    return {"id": ident, "type": "message", "status": "completed", "role": message.get("role"), "content": content}


def _output_text(response: dict) -> str:
    return "".join(part.get("text", "") for item in response.get("output") or () for part in item.get("content") or ())


class _MockServer(ThreadingHTTPServer):
    daemon_threads = True
    # The listen backlog is set when the socket opens: the default 5 drops bursts of connections.
    request_queue_size = 4096


class LocalServer:
    """An HTTP server of this module's kind in a background thread (tests), or in the foreground
    (the command): `MockUpstream`, and `mock_billing.MockBilling`."""

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler], state) -> None:
        self.state = state
        bound = type(f"Bound{handler.__name__}", (handler,), {"state": state})
        self.server = _MockServer((host, port), bound)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MockUpstream(LocalServer):
    """The mock OpenAI- and Anthropic-compatible upstream."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **options) -> None:
        super().__init__(host, port, MockHandler, MockState(**options))
