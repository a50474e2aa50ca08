"""The validation set: prompts from sources disjoint from the development set and its reserved
list, on which every threshold is chosen (`build.py`, `handwritten.py`, `packaged.py`)."""

from pathlib import Path

VALIDATION_PATH = Path(__file__).resolve().parent / "validation.jsonl"
