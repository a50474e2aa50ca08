"""The ledger's safety net, in one local directory.

- Spool (`<request_id>.json`): when the database cannot take a row (a restart, a failover, a full
  disk), the entry is written here, fsynced, and replayed once the database is back.
- Outbox (`outbox-<pid>-<token>.jsonl`): when the row is written after the response has gone
  out, the entry waits here until its row commits; a process killed in between leaves the file
  behind. Each process appends its entries, one JSON line each, to a segment file, and removes
  the segment once no entry in it waits: one append per request instead of creating and
  removing a file per request (bench/outbox_cost.py: 18 against 68 µs of CPU per entry).

Replaying is idempotent on `request_id`, so a row is never lost and never counted twice. Each web
process replays its own spool in a background thread; `manage.py replay_ledger_spool` (and the
Celery beat job of the same name) picks up what a dead process left behind, outbox segments included
once they are older than OUTBOX_STALE_SECONDS.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from django.conf import settings

from spendplane import fastjson

from .pricing import Rates, Usage
from .services import LedgerEntry, usage_record

logger = logging.getLogger("spendplane.ledger")
OUTBOX_STALE_SECONDS = 60
_replayer_lock = threading.Lock()
_replayer: threading.Thread | None = None


def spool_dir() -> Path:
    return Path(settings.SPENDPLANE_LEDGER_SPOOL_DIR)


def _encode(entry: LedgerEntry) -> dict:
    # A shallow copy: dataclasses.asdict deep-copies, a measurable share of the hot path.
    data = dict(vars(entry))
    data["created_at"] = entry.created_at.isoformat()
    data["usage"] = dict(vars(entry.usage))
    if entry.rates is not None:
        data["rates"] = {name: str(value) for name, value in vars(entry.rates).items()}
    return data


def _decode(data: dict) -> LedgerEntry:
    rates = data.pop("rates")
    data["created_at"] = datetime.fromisoformat(data["created_at"])
    data["usage"] = Usage(**data["usage"])
    if rates is not None:
        source = rates.pop("source")
        data["rates"] = Rates(**{name: Decimal(value) for name, value in rates.items()}, source=source)
    return LedgerEntry(**data)


def spool_write(entry: LedgerEntry) -> Path:
    """Write one entry durably (temp file, fsync, rename, fsync the directory) and make sure this
    process will replay it."""
    directory = spool_dir()
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{entry.request_id}.json"
    partial = directory / f".{entry.request_id}.{os.getpid()}.tmp"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(_encode(entry), handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, final)
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    _start_replayer()
    return final


_SEGMENT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
OUTBOX_SEGMENT_ENTRIES = 1000
# A segment not appended to for this long takes no more entries, so a replayer (which waits for
# OUTBOX_STALE_SECONDS of quiet) never removes a segment its process may still append to.
OUTBOX_SEGMENT_QUIET_SECONDS = 10.0


class OutboxSegment:
    __slots__ = ("descriptor", "directory", "entries", "keep", "last_write", "path", "sealed", "waiting")

    def __init__(self, directory: str, path: str, descriptor: int) -> None:
        self.directory, self.path, self.descriptor = directory, path, descriptor
        self.last_write = time.monotonic()
        self.entries = self.waiting = 0
        self.sealed = self.keep = False


class _Outbox:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: OutboxSegment | None = None

    def add(self, line: bytes) -> OutboxSegment:
        now = time.monotonic()
        directory = settings.SPENDPLANE_LEDGER_SPOOL_DIR
        with self._lock:
            segment = self._current
            if segment is not None and (
                segment.entries >= OUTBOX_SEGMENT_ENTRIES
                or now - segment.last_write > OUTBOX_SEGMENT_QUIET_SECONDS
                or segment.directory != directory
            ):
                self._seal(segment)
                segment = None
            if segment is None:
                segment = self._current = self._open(directory)
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(segment.descriptor, view) :]
            except OSError:
                self._seal(segment)  # a torn line ends the segment; the entries before it stand
                raise
            segment.entries += 1
            segment.waiting += 1
            segment.last_write = now
            return segment

    def done(self, segment: OutboxSegment, *, kept: bool) -> None:
        with self._lock:
            segment.waiting -= 1
            segment.keep = segment.keep or not kept
            if not segment.waiting:
                self._seal(segment)

    def _open(self, directory: str) -> OutboxSegment:
        path = os.path.join(directory, f"outbox-{os.getpid()}-{secrets.token_hex(6)}.jsonl")
        try:
            descriptor = os.open(path, _SEGMENT_FLAGS, 0o600)
        except FileNotFoundError:
            os.makedirs(directory, exist_ok=True)
            descriptor = os.open(path, _SEGMENT_FLAGS, 0o600)
        return OutboxSegment(directory, path, descriptor)

    def _seal(self, segment: OutboxSegment) -> None:
        """No more entries go to `segment`; it is removed once none waits (unless one of its entries
        has no other copy: `keep`)."""
        if self._current is segment:
            self._current = None
        if not segment.sealed:
            segment.sealed = True
            os.close(segment.descriptor)
        if not segment.waiting and not segment.keep:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(segment.path)


_outbox = _Outbox()


def outbox_write(entry: LedgerEntry) -> OutboxSegment:
    """Keep the entry on local disk until its row commits. No fsync: this guards against the
    process dying (the page cache survives it), not the machine; the spool fsyncs."""
    return _outbox.add(fastjson.dumps(_encode(entry)) + b"\n")


def outbox_done(segment: OutboxSegment, *, kept: bool) -> None:
    """The entry's row is in the ledger (or in the spool); `kept=False`: it is in neither, so the
    outbox keeps its copy for the replayer."""
    _outbox.done(segment, kept=kept)


def outbox_request_ids() -> set[str]:
    """Request ids of the entries in this directory's outbox segments (for checks and tests)."""
    found = set()
    for path in spool_dir().glob("outbox-*.jsonl"):
        for entry in _segment_entries(path):
            if entry is not None:
                found.add(entry.request_id)
    return found


def _segment_entries(path: Path) -> list[LedgerEntry | None]:
    """The entries of an outbox segment; None for a line that does not decode. A last line without
    its newline was cut short by the process dying before it answered that request: skipped."""
    lines = path.read_bytes().split(b"\n")[:-1]
    entries: list[LedgerEntry | None] = []
    for line in lines:
        try:
            entries.append(_decode(fastjson.loads(line)))
        except (ValueError, TypeError, KeyError):
            entries.append(None)
    return entries


def spooled_count() -> int:
    directory = spool_dir()
    return sum(1 for _ in directory.glob("*.json")) if directory.exists() else 0


def spool_replay(*, stop_on_error: bool = True) -> tuple[int, int]:
    """Write every spooled entry to the ledger, oldest first, then the outbox segments (and single
    `.pending` files of earlier versions) left stale by dead processes. Returns (replayed, left)."""
    directory = spool_dir()
    if not directory.exists():
        return 0, 0
    stale_before = time.time() - OUTBOX_STALE_SECONDS
    paths = list(directory.glob("*.json"))
    for pattern in ("outbox-*.jsonl", "*.pending"):
        for path in directory.glob(pattern):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < stale_before:
                    paths.append(path)
    paths.sort(key=_mtime)
    replayed = 0
    for index, path in enumerate(paths):
        try:
            if path.suffix == ".jsonl":
                entries = _segment_entries(path)
            else:
                entries = [_decode(json.loads(path.read_text(encoding="utf-8")))]
        except FileNotFoundError:
            continue  # another replayer took it
        except (ValueError, TypeError, KeyError):
            entries = [None]
        try:
            for entry in entries:
                if entry is not None:
                    usage_record(entry=entry)
                    replayed += 1
        except Exception:
            logger.warning("ledger still unavailable; %d spooled files wait", len(paths) - index)
            if stop_on_error:
                return replayed, len(paths) - index
            continue
        if None in entries:
            logger.error("unreadable ledger spool entries in %s; file kept for inspection", path)
            path.rename(path.with_suffix(".bad"))
        else:
            path.unlink(missing_ok=True)
    return replayed, spooled_count()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _replay_until_empty() -> None:
    global _replayer
    from django.db import close_old_connections

    delay = 1.0
    while True:
        threading.Event().wait(delay)
        close_old_connections()
        try:
            replayed, left = spool_replay()
        except Exception:
            logger.exception("ledger spool replay failed")
            left = 1
        else:
            if replayed:
                logger.warning("replayed %d spooled ledger rows", replayed)
        if not left:
            with _replayer_lock:
                if not spooled_count():
                    _replayer = None
                    return
        delay = min(delay * 2, 30.0)


def _start_replayer() -> None:
    global _replayer
    with _replayer_lock:
        if _replayer is None:
            _replayer = threading.Thread(target=_replay_until_empty, name="ledger-spool-replay", daemon=True)
            _replayer.start()
