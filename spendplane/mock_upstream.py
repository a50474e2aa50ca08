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

OPENAI_MODELS = [
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
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
    messages = body.get("messages") or []
    if messages and isinstance(messages[-1], dict):
        content = messages[-1].get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    value = body.get("input")
    return value if isinstance(value, str) else ""


def _reply_words(body: dict) -> list[str]:
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_REPLY_TOKENS
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
        self.times_seen: dict[str, int] = {}
        self.lock = threading.Lock()


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
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "mock"} for m in OPENAI_MODELS]
            return self._json(200, {"object": "list", "data": data})
        if self.path == "/_mock/requests":
            with self.state.lock:
                return self._json(200, list(self.state.requests))
        return self._error(404, "Not found", "invalid_request_error")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path == "/_mock/reset":
            with self.state.lock:
                self.state.requests.clear()
            return self._json(200, {"ok": True})
        anthropic = self.path.rstrip("/") == "/v1/messages"
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
        if anthropic:
            return self._messages(body, fault)
        if self.path.rstrip("/") in ("/v1/chat/completions", "/chat/completions"):
            return self._chat(body, fault)
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

    # --- Anthropic ------------------------------------------------------------------------
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


class _MockServer(ThreadingHTTPServer):
    daemon_threads = True
    # The listen backlog is set when the socket opens: the default 5 drops bursts of connections.
    request_queue_size = 4096


class MockUpstream:
    """The mock server, in a background thread (tests) or in the foreground (the command)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **options) -> None:
        self.state = MockState(**options)
        handler = type("BoundMockHandler", (MockHandler,), {"state": self.state})
        self.server = _MockServer((host, port), handler)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> MockUpstream:
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
