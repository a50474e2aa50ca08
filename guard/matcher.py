"""Run every rule over a text in one pass.

Most rule alternatives start with a literal word list (`\\b(?:ignore|disregard|...)`). Those
literal starts are read out of the compiled regex itself and put into one Aho-Corasick automaton
(pyahocorasick), so a scan walks the text once, and each alternative is tried with `match` only
where one of its starts occurs: a few microseconds per candidate, instead of a regex search over
the whole text per alternative. The few alternatives without a literal start (`(?:^|\\n)\\s*system:`)
are searched in a window around their rule's anchors, found in the same pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from re import _constants as sre
from re import _parser as sre_parse

import ahocorasick

from .normalize import is_word_char, windows
from .rules import RULES, Rule

# A start expanded into more strings than this is treated as having none.
MAX_STARTS = 512
WINDOW_BEFORE, WINDOW_AFTER, MAX_WINDOWS = 160, 260, 64


def _walk(items) -> tuple[set[str], bool]:
    """The literal strings a match of `items` can start with, and whether `items` is all literal."""
    prefixes = {""}
    for op, av in items:
        if op is sre.AT:
            continue
        if op is sre.LITERAL:
            grow, complete = {chr(av)}, True
        elif op is sre.IN and all(kind is sre.LITERAL for kind, _ in av):
            grow, complete = {chr(value) for _, value in av}, True
        elif op is sre.SUBPATTERN:
            grow, complete = _walk(av[3])
        elif op is sre.BRANCH:
            walked = [_walk(branch) for branch in av[1]]
            grow = set().union(*(g for g, _ in walked))
            complete = all(c for _, c in walked)
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT) and av[0] == 0 and av[1] == 1:
            body, complete = _walk(av[2])
            grow = body | {""}
        else:
            return prefixes, False
        grown = {p + g for p in prefixes for g in grow}
        if len(grown) > MAX_STARTS:
            return prefixes, False
        prefixes = grown
        if not complete:
            return prefixes, False
    return prefixes, True


def literal_starts(pattern: re.Pattern) -> set[str] | None:
    """Lower-case strings one of which starts every match, or None when some match could start with
    anything (or with a single ASCII character, which would match almost everywhere)."""
    starts, _ = _walk(sre_parse.parse(pattern.pattern, pattern.flags))
    starts = {s.lower() for s in starts}
    if any(len(s) < 2 and (not s or s.isascii()) for s in starts):
        return None
    return starts


def starts_at_word_boundary(pattern: re.Pattern) -> bool:
    parsed = list(sre_parse.parse(pattern.pattern, pattern.flags))
    return bool(parsed) and parsed[0] == (sre.AT, sre.AT_BOUNDARY)


@dataclass(frozen=True)
class Matcher:
    automaton: ahocorasick.Automaton
    windowed: dict[int, tuple[re.Pattern, ...]]  # rule index -> alternatives without a literal start

    def find(self, text: str, lowered: str) -> list[tuple[Rule, re.Match]]:
        """`lowered` is `text.lower()`; match positions in it must be positions in `text`."""
        if len(lowered) != len(text):  # a few characters grow when lower-cased; keep positions
            lowered = text.replace("\u0130", "I").lower()  # Turkish İ, by far the most common
            if len(lowered) != len(text):
                lowered = "".join(low if len(low := ch.lower()) == 1 else ch for ch in text)
        found: dict[int, re.Match] = {}
        anchor_hits: dict[int, list[int]] = {}
        for end, entries in self.automaton.iter(lowered):
            for rule_index, pattern, length, bounded in entries:
                if rule_index in found:
                    continue
                start = end - length + 1
                if bounded and start and is_word_char(lowered[start - 1]):
                    continue  # inside a word ("hi" in "this"): the pattern's leading \b would fail
                if pattern is None:
                    anchor_hits.setdefault(rule_index, []).append(start)
                elif match := pattern.match(text, start):
                    found[rule_index] = match
        for rule_index, positions in anchor_hits.items():
            if rule_index not in found:
                match = _search_windows(text, positions, self.windowed[rule_index])
                if match:
                    found[rule_index] = match
        return [(RULES[i], found[i]) for i in sorted(found)]


def _search_windows(text: str, positions: list[int], patterns: tuple[re.Pattern, ...]) -> re.Match | None:
    for start, end in windows(sorted(positions)[:MAX_WINDOWS], WINDOW_BEFORE, WINDOW_AFTER):
        for pattern in patterns:
            if match := pattern.search(text, start, end):
                return match
    return None


@lru_cache(maxsize=1)
def matcher() -> Matcher:
    entries: dict[str, list[tuple]] = {}
    windowed: dict[int, list[re.Pattern]] = {}
    for rule_index, rule in enumerate(RULES):
        for pattern in rule.alternatives:
            starts = literal_starts(pattern)
            if starts is None:
                windowed.setdefault(rule_index, []).append(pattern)
                continue
            for start in starts:
                bounded = starts_at_word_boundary(pattern) and is_word_char(start[0])
                entries.setdefault(start, []).append((rule_index, pattern, len(start), bounded))
        if rule_index in windowed:
            if not rule.anchors:
                raise ValueError(f"rule {rule.name} has alternatives without a literal start and no anchors")
            for anchor in rule.anchors:
                entries.setdefault(anchor, []).append((rule_index, None, len(anchor), False))
    automaton = ahocorasick.Automaton()
    for key, values in entries.items():
        automaton.add_word(key, tuple(values))
    automaton.make_automaton()
    return Matcher(automaton, {i: tuple(p) for i, p in windowed.items()})
