"""Data pasted inside a user's own turn: fenced code, quoted lines, an email with its headers.

Position is evidence. An instruction addressed to the assistant inside a carrier (a tool result,
a document, a pasted email, a table, a code comment) is what an indirect injection looks like;
the same words in the user's request about their own task are not. So each carrier found in a
user turn is also scanned on its own, as a `document`, under the carrier thresholds, and
sanitising fences that stretch alone.
"""

from __future__ import annotations

import re

_FENCED = re.compile(r"```[^\n]*\n(.*?)(?:```|\Z)", re.S)
_QUOTED = re.compile(r"(?:^[ \t]*>.*(?:\n|\Z)){2,}", re.M)
_HEADER = re.compile(r"^(?:from|to|cc|subject|date|sent|reply-to):[ \t]*\S.*$", re.M | re.I)
MIN_CARRIER_CHARS = 40


def spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each carrier in `text`, in order, not overlapping."""
    found = [(m.start(1), m.end(1)) for m in _FENCED.finditer(text)]
    found += [(m.start(), m.end()) for m in _QUOTED.finditer(text)]
    headers = list(_HEADER.finditer(text))
    if len(headers) >= 2:  # an email: from its first header line to the end of the turn
        found.append((headers[0].start(), len(text)))
    kept: list[tuple[int, int]] = []
    for start, end in sorted(found):
        if end - start < MIN_CARRIER_CHARS or (start, end) == (0, len(text)):
            continue
        if kept and start < kept[-1][1]:
            kept[-1] = (kept[-1][0], max(end, kept[-1][1]))
        else:
            kept.append((start, end))
    return kept
