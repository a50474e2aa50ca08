"""The ledger's safety net, in one local directory.

- Spool (`<request_id>.json`): when the database cannot take a row (a restart, a failover, a full
  disk), the entry is written here, fsynced, and replayed once the database is back.
- Outbox (`<request_id>.pending`): when the row is written after the response has gone out, the
  entry waits here until its row commits; a process killed in between leaves the file behind.

Replaying is idempotent on `request_id`, so a row is never lost and never counted twice. Each web
process replays its own spool in a background thread; `manage.py replay_ledger_spool` (and the
Celery beat job of the same name) picks up what a dead process left behind, outbox files included
once they are older than OUTBOX_STALE_SECONDS.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from django.conf import settings

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


_OUTBOX_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


def outbox_write(entry: LedgerEntry) -> str:
    """Keep the entry on local disk until its row commits. No fsync: this guards against the
    process dying (the page cache survives it), not the machine; the spool fsyncs. Plain `os`
    calls: pathlib's text-file layers cost more than the write itself."""
    path = os.path.join(settings.SPENDPLANE_LEDGER_SPOOL_DIR, f"{entry.request_id}.pending")
    data = json.dumps(_encode(entry)).encode()
    try:
        descriptor = os.open(path, _OUTBOX_FLAGS, 0o600)
    except FileNotFoundError:
        spool_dir().mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, _OUTBOX_FLAGS, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
    finally:
        os.close(descriptor)
    return path


def outbox_done(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def spooled_count() -> int:
    directory = spool_dir()
    return sum(1 for _ in directory.glob("*.json")) if directory.exists() else 0


def spool_replay(*, stop_on_error: bool = True) -> tuple[int, int]:
    """Write every spooled entry to the ledger, oldest first. Returns (replayed, left)."""
    directory = spool_dir()
    if not directory.exists():
        return 0, 0
    stale_before = time.time() - OUTBOX_STALE_SECONDS
    paths = list(directory.glob("*.json"))
    for pending in directory.glob("*.pending"):
        with contextlib.suppress(FileNotFoundError):
            if pending.stat().st_mtime < stale_before:
                paths.append(pending)
    paths.sort(key=_mtime)
    replayed = 0
    for index, path in enumerate(paths):
        try:
            entry = _decode(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            continue  # another replayer took it
        except (ValueError, TypeError, KeyError):
            logger.error("unreadable ledger spool file %s kept for inspection", path)
            path.rename(path.with_suffix(".bad"))
            continue
        try:
            usage_record(entry=entry)
        except Exception:
            logger.warning("ledger still unavailable; %d spooled rows wait", len(paths) - index)
            if stop_on_error:
                return replayed, len(paths) - index
            continue
        path.unlink(missing_ok=True)
        replayed += 1
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
