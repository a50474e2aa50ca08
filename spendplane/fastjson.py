"""JSON on the proxy's hot path through orjson (a C encoder and decoder), with the standard library
behind it for the few inputs orjson refuses, so what is accepted and produced stays the same.

orjson refuses integers past 64 bits, non-string keys and nesting deeper than 254 levels when
encoding, and NaN, Infinity and unpaired surrogate escapes when decoding; the standard library
takes all of them, and its error messages are the ones clients see for invalid JSON. orjson also
reads an integer past 64 bits as a float, losing digits, so text with a run of 19 digits or more
is read by the standard library.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import orjson

_LONG_DIGIT_RUN = re.compile(r"[0-9]{19}")
_LONG_DIGIT_RUN_BYTES = re.compile(rb"[0-9]{19}")


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None, sort_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON. Datetimes come out in ISO 8601 (as `isoformat()` writes them) and
    dataclasses as objects; anything else orjson cannot encode goes through `default`."""
    try:
        return orjson.dumps(value, default=default, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except orjson.JSONEncodeError:
        # ASCII escapes: a lone surrogate (which json.loads lets through) still encodes.
        return json.dumps(value, default=default, sort_keys=sort_keys, separators=(",", ":")).encode()


def loads(data: bytes | str, *, strict: bool = False) -> Any:
    """Parse JSON as the standard library does; raises ValueError (with its message) when invalid.
    `strict` also refuses what RFC 8259 does not allow and the standard library lets through:
    NaN and Infinity, and surrogate escapes without their pair (they cannot be encoded as text)."""
    long_digit_run = (_LONG_DIGIT_RUN if isinstance(data, str) else _LONG_DIGIT_RUN_BYTES).search(data)
    if long_digit_run is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    if not strict:
        return json.loads(data)
    value = json.loads(data, parse_constant=_refuse_constant)
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise ValueError("a \\uXXXX surrogate escape without its pair is not text") from None
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
