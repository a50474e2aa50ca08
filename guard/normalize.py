"""Undo the tricks that hide an instruction from a scanner, keeping what was hidden.

`normalize(text)` returns the visible text in canonical form (NFKC, no zero-width or bidi
characters, Latin look-alikes mapped to Latin inside mixed-script words) plus every hidden
payload it could recover: Unicode tag characters, HTML comments and hidden elements, markdown
link and image titles, base64 / hex blobs, rot13 when the text asks for it, and words spelled
out one letter at a time. Rules and the classifier then see all of it.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property

ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e\u034f]")
BIDI = re.compile("[\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c]")
TAG_START = 0xE0000  # Unicode tag characters run from here to U+E007F and mirror ASCII

# Cyrillic and Greek letters that render like Latin ones.
HOMOGLYPHS = str.maketrans(
    {
        "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s",
        "ԁ": "d", "ɡ": "g", "һ": "h", "ӏ": "l", "ո": "n", "ԛ": "q", "ԝ": "w", "А": "A", "В": "B", "Е": "E",
        "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "Х": "X", "У": "Y", "І": "I",
        "α": "a", "ο": "o", "ρ": "p", "ν": "v", "ι": "i", "κ": "k", "τ": "t", "υ": "u", "Α": "A", "Β": "B",
        "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T",
        "Υ": "Y", "Χ": "X",
    }
)  # fmt: skip
_TAG_CHARS = re.compile("[\U000e0000-\U000e007f]")
_LATIN = re.compile(r"[A-Za-z]")
_NON_LATIN_LETTER = re.compile(r"[\u0370-\u03ff\u0400-\u04ff\u0500-\u052f\u0261\u0578]")
_LOOKALIKES = "\u0370-\u03ff\u0400-\u04ff\u0500-\u052f\u0261\u0578"
# A Latin letter beside a look-alike: where a mixed-script word must have a seam.
# (Written to start with the look-alike class, so the regex engine skips ahead to candidates.)
_SCRIPT_SEAM = re.compile(f"[{_LOOKALIKES}](?:(?=[A-Za-z])|(?<=[A-Za-z][{_LOOKALIKES}]))")
_INVISIBLE = re.compile(f"{ZERO_WIDTH.pattern}|{BIDI.pattern}|{_TAG_CHARS.pattern}")
_DOTTED = re.compile(r"\.\w\.\w\.\w\.\w\.")  # starts with a literal, so the search skips ahead
_TWENTY_OR_LONGER = re.compile(rb"[\x14-\xff]")
_NON_LATIN_WORD = re.compile(r"\S*[\u0370-\u03ff\u0400-\u04ff\u0500-\u052f\u0261\u0578]\S*")
_HTML_COMMENT = re.compile(r"<!--(.*?)-->", re.S)
# An element's opening tag, then whether its attributes hide it. Two linear steps: one regex for
# both let a "<" with no ">" after it backtrack over the rest of the text (1 ms in 9,000 chars).
_OPENING_TAG = re.compile(r"<(\w+)([^<>]{0,500})>")
_HIDING_ATTRIBUTE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|hidden", re.I)
_TAG = re.compile(r"</?[a-zA-Z][^>]{0,200}>")
# Tags no markup language has: a fake turn or instruction boundary aimed at the model.
_ROLE_TAG = re.compile(
    r"</?\s*(?:system|instructions?|admin|developer|sys|prompt|assistant|user|im_start|command)\s*>", re.I
)
_MD_TITLE = re.compile(r"\]\([^)\s]*\s+\"([^\"]+)\"\)")
_MD_ALT = re.compile(r"!\[([^\]]{12,})\]")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{20,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"(?<![0-9a-fA-F])(?:[0-9a-fA-F]{2}[\s:]?){12,}(?![0-9a-fA-F])")
# Hex-encoded text always has pairs that start with a digit (ASCII, and the space that
# _decode_hex requires, are 0x20-0x7f): a digit-first check that skips through prose quickly.
_HEX_HINT = re.compile(r"[0-9][0-9a-fA-F][\s:]?[0-9a-fA-F]{2}[\s:]?[0-9a-fA-F]{2}")
# How much text around a mention of rot13 is decoded.
ROT13_BEFORE, ROT13_AFTER = 500, 2000
_SPACED = re.compile(r"(?:\b\w\b[ .]){5,}\b\w\b")


@dataclass
class Normalized:
    text: str
    hidden: list[str] = field(default_factory=list)
    signals: set[str] = field(default_factory=set)

    # Read once normalisation is done: rules, n-grams and the excerpt all read the same text.
    @cached_property
    def scan_text(self) -> str:
        """The visible text followed by every recovered hidden payload."""
        return "\n".join([self.text, *self.hidden]) if self.hidden else self.text

    @cached_property
    def lowered(self) -> str:
        return self.scan_text.lower()


def _printable_ratio(text: str) -> float:
    if not text:
        return 0.0
    good = sum(1 for ch in text if ch.isprintable() or ch in "\n\t")
    return good / len(text)


def _decode_base64(blob: str) -> str | None:
    try:
        raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    letters = sum(ch.isalpha() for ch in text)
    if len(text) < 8 or _printable_ratio(text) < 0.95 or letters < len(text) * 0.5 or " " not in text:
        return None
    return text


def _decode_hex(blob: str) -> str | None:
    digits = re.sub(r"[\s:]", "", blob)
    try:
        text = bytes.fromhex(digits).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    if _printable_ratio(text) < 0.95 or " " not in text:
        return None
    return text


def _unhomoglyph(text: str) -> tuple[str, bool]:
    if not _SCRIPT_SEAM.search(text):  # no Latin letter touches a look-alike: skip the word pass
        return text, False
    changed = False

    def fix(match: re.Match) -> str:
        nonlocal changed
        word = match.group(0)
        if _LATIN.search(word) and _NON_LATIN_LETTER.search(word):
            changed = True
            return word.translate(HOMOGLYPHS)
        return word

    return _NON_LATIN_WORD.sub(fix, text), changed


def _undo_invisible(text: str, result: Normalized) -> str:
    """Tag characters, zero-width and bidi controls out (tag-smuggled text kept), then NFKC and
    look-alikes mapped to Latin. Plain ASCII text has none of this and skips it."""
    if _INVISIBLE.search(text):
        tags = [chr(ord(ch) - TAG_START) for ch in _TAG_CHARS.findall(text)]
        if tags:
            result.signals.add("unicode_tags")
            smuggled = "".join(ch for ch in tags if ch.isprintable())
            if smuggled.strip():
                result.hidden.append(smuggled)
            text = _TAG_CHARS.sub("", text)
        text, count = ZERO_WIDTH.subn("", text)
        if count:
            result.signals.add("zero_width")
        text, count = BIDI.subn("", text)
        if count:
            result.signals.add("bidi_controls")
    if not unicodedata.is_normalized("NFKC", text):  # only the lines that need it ("\n" never composes)
        text = "\n".join(
            line if unicodedata.is_normalized("NFKC", line) else unicodedata.normalize("NFKC", line)
            for line in text.split("\n")
        )
    text, mixed = _unhomoglyph(text)
    if mixed:
        result.signals.add("mixed_script")
    return text


def is_word_char(ch: str) -> bool:
    """What `\\w` matches in a str pattern."""
    return ch.isalnum() or ch == "_"


def _rot13_mentions(text: str) -> list[int]:
    """Where the text says rot13 (rot-13, ROT 13) as a word: found from the rare "13" outwards,
    not by a case-blind regex scan of the whole text."""
    found = []
    at = text.find("13")
    while at != -1:
        if not is_word_char(text[at + 2 : at + 3] or " "):
            for before in ("rot", "rot-", "rot "):
                start = at - len(before)
                if start >= 0 and text[start:at].lower() == before and not is_word_char(text[start - 1 : start] or " "):
                    found.append(start)
                    break
        at = text.find("13", at + 1)
    return found


def windows(positions: list[int], before: int, after: int) -> list[tuple[int, int]]:
    """(start, end) spans from `before` characters ahead of each position to `after` past it,
    overlapping spans merged; `positions` in ascending order."""
    spans: list[list[int]] = []
    for at in positions:
        start, end = max(at - before, 0), at + after
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    return [(start, end) for start, end in spans]


def _rot13_payloads(text: str, mentions: list[int]) -> list[str]:
    """The text around each mention, decoded: a payload sits next to the words that name its
    encoding, and decoding only there keeps a long document that says "rot13" once from doubling
    the scan."""
    return [codecs.decode(text[start:end], "rot13") for start, end in windows(mentions, ROT13_BEFORE, ROT13_AFTER)]


def _has_spelled_out_run(text: str, sizes: bytes) -> bool:
    """Six or more one-character words in a row, or a word spelt with dots (i.g.n.o.r.e)."""
    return b"\x01" * 6 in sizes or _DOTTED.search(text) is not None


def _markup_payloads(text: str):
    """(text, signal) for each HTML comment and each element whose attributes hide it."""
    for match in _HTML_COMMENT.finditer(text):
        yield match.group(1), "html_comment"
    for tag in _OPENING_TAG.finditer(text):
        if _HIDING_ATTRIBUTE.search(tag.group(2)):
            closing = re.compile(rf"</{re.escape(tag.group(1))}\s*>", re.I).search(text, tag.end())
            if closing:
                yield text[tag.end() : closing.start()], "hidden_html"


def normalize(text: str) -> Normalized:
    result = Normalized(text="")
    if not text.isascii():
        text = _undo_invisible(text, result)

    if "<" in text:
        for payload, signal in _markup_payloads(text):
            if payload.strip():
                result.hidden.append(_TAG.sub(" ", payload).strip())
                result.signals.add(signal)
        if _TAG.search(text):
            if _ROLE_TAG.search(text):
                result.signals.add("role_tag")
            text = _TAG.sub(" ", _HTML_COMMENT.sub(" ", text))
    if "](" in text or "![" in text:
        for pattern in (_MD_TITLE, _MD_ALT):
            result.hidden.extend(m.group(1) for m in pattern.finditer(text))

    # The encodings below need a long word, or a run of hex pairs; most texts have neither, so a
    # cheap check decides whether their regexes run at all.
    words = text.split()
    lengths = list(map(len, words))
    longest = max(lengths, default=0)
    # One byte per word (its length, capped), so C-speed searches find long words and runs.
    sizes = bytes(lengths) if longest < 256 else bytes(min(n, 255) for n in lengths)
    for long_word in _TWENTY_OR_LONGER.finditer(sizes):
        for match in _BASE64.finditer(words[long_word.start()]):
            decoded = _decode_base64(match.group(0))
            if decoded:
                result.hidden.append(decoded)
                result.signals.add("base64_payload")
    if _HEX_HINT.search(text):
        for match in _HEX.finditer(text):
            decoded = _decode_hex(match.group(0))
            if decoded:
                result.hidden.append(decoded)
                result.signals.add("hex_payload")
    mentions = _rot13_mentions(text)
    if mentions:
        result.hidden.extend(_rot13_payloads(text, mentions))
        result.signals.add("rot13")
    if _has_spelled_out_run(text, sizes):
        for match in _SPACED.finditer(text):
            result.hidden.append(re.sub(r"[ .]", "", match.group(0)))
            result.signals.add("spaced_letters")
    result.text = text
    return result


def strip_hidden(text: str) -> str:
    """Sanitise: drop the characters that hide text (tags, zero-width, bidi) and HTML comments."""
    text = _TAG_CHARS.sub("", text)
    text = BIDI.sub("", ZERO_WIDTH.sub("", text))
    return _HTML_COMMENT.sub("", unicodedata.normalize("NFKC", text))
