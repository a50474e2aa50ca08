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
_NON_LATIN_WORD = re.compile(r"\S*[\u0370-\u03ff\u0400-\u04ff\u0500-\u052f\u0261\u0578]\S*")
_HTML_COMMENT = re.compile(r"<!--(.*?)-->", re.S)
_HIDDEN_ELEMENT = re.compile(
    r"<(\w+)[^>]*(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|hidden)[^>]*>(.*?)</\1>", re.S | re.I
)
_TAG = re.compile(r"</?[a-zA-Z][^>]{0,200}>")
# Tags no markup language has: a fake turn or instruction boundary aimed at the model.
_ROLE_TAG = re.compile(
    r"</?\s*(?:system|instructions?|admin|developer|sys|prompt|assistant|user|im_start|command)\s*>", re.I
)
_MD_TITLE = re.compile(r"\]\([^)\s]*\s+\"([^\"]+)\"\)")
_MD_ALT = re.compile(r"!\[([^\]]{12,})\]")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{20,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"(?<![0-9a-fA-F])(?:[0-9a-fA-F]{2}[\s:]?){12,}(?![0-9a-fA-F])")
_ROT13_HINT = re.compile(r"\brot[- ]?13\b", re.I)
_SPACED = re.compile(r"(?:\b\w\b[ .]){5,}\b\w\b")


@dataclass
class Normalized:
    text: str
    hidden: list[str] = field(default_factory=list)
    signals: set[str] = field(default_factory=set)

    @property
    def scan_text(self) -> str:
        """The visible text followed by every recovered hidden payload."""
        return "\n".join([self.text, *self.hidden]) if self.hidden else self.text


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
    if not _NON_LATIN_LETTER.search(text):  # the common case: nothing to map, skip the word pass
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


def normalize(text: str) -> Normalized:
    result = Normalized(text="")
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
    stripped, count = BIDI.subn("", text)
    if count:
        result.signals.add("bidi_controls")
    text = unicodedata.normalize("NFKC", stripped)
    text, mixed = _unhomoglyph(text)
    if mixed:
        result.signals.add("mixed_script")

    for pattern, signal in ((_HTML_COMMENT, "html_comment"), (_HIDDEN_ELEMENT, "hidden_html")):
        for match in pattern.finditer(text):
            payload = match.group(match.lastindex or 1)
            if payload.strip():
                result.hidden.append(_TAG.sub(" ", payload).strip())
                result.signals.add(signal)
    if "<" in text and _TAG.search(text):
        if _ROLE_TAG.search(text):
            result.signals.add("role_tag")
        text = _TAG.sub(" ", _HTML_COMMENT.sub(" ", text))
    for pattern in (_MD_TITLE, _MD_ALT):
        result.hidden.extend(m.group(1) for m in pattern.finditer(text))

    for match in _BASE64.finditer(text):
        decoded = _decode_base64(match.group(0))
        if decoded:
            result.hidden.append(decoded)
            result.signals.add("base64_payload")
    for match in _HEX.finditer(text):
        decoded = _decode_hex(match.group(0))
        if decoded:
            result.hidden.append(decoded)
            result.signals.add("hex_payload")
    if _ROT13_HINT.search(text):
        result.hidden.append(codecs.decode(text, "rot13"))
        result.signals.add("rot13")
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
