"""One background thread per process that writes finished requests to the ledger in batches.

A request hands its entry over once the entry is safe in the outbox (`metering.spool`), so the
database write is off the request's path and, under load, many rows share one statement and one
commit. A batch the database refuses is spooled, entry by entry; a process that dies with entries
still queued leaves their entries in the outbox, which the spool replayer picks up. `flush()` writes what
is queued before the process exits (gunicorn's `worker_exit` hook and `atexit` call it).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

logger = logging.getLogger("spendplane.ledger")

Item = TypeVar("Item")
MAX_BATCH = 256


class BatchWriter(Generic[Item]):
    """Calls `write_batch(items)` from its own thread with everything submitted since the last
    call (at most `max_batch` at once). `write_batch` must not raise for a single bad item; an
    exception escaping it is logged and the batch is dropped from the queue (its entries stay in the outbox)."""

    def __init__(
        self,
        write_batch: Callable[[Sequence[Item]], None],
        *,
        name: str,
        max_batch: int = MAX_BATCH,
        linger_seconds: float = 0.0,
    ):
        self._write_batch = write_batch
        self._name = name
        self._max_batch = max_batch
        # How long a batch waits for company after its first item: each statement costs the
        # process about as much CPU as writing several rows more in it.
        self._linger = linger_seconds
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # Counted without a lock on the request path: next() on a count is atomic in CPython.
        self._submitted = itertools.count(1)
        self._last_submitted = 0
        self._done = 0

    def submit(self, item: Item) -> None:
        self._last_submitted = next(self._submitted)
        self._queue.put(item)
        if self._thread is None:
            self._start()

    @property
    def pending(self) -> int:
        """Submitted and not yet written (exact once submitters are quiet; a flush is the sure wait)."""
        return self._last_submitted - self._done

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is written; False if `timeout` ran out first."""
        if self._thread is None:
            return True
        reached = threading.Event()
        self._queue.put(_FlushMark(reached))
        self._wake.set()  # cut a linger short
        return reached.wait(timeout)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        backlog = False
        while True:
            batch, marks = [], []
            item = self._queue.get()
            # The linger is a sleep on an event only `flush` sets, not a wait on the queue: a
            # submit then only appends, instead of waking this thread once per item (measured: the
            # wake-ups were 5% of a worker's CPU under load).
            if self._linger and not backlog and not isinstance(item, _FlushMark):
                self._wake.wait(self._linger)
                self._wake.clear()
            while True:
                (marks if isinstance(item, _FlushMark) else batch).append(item)
                if len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            backlog = len(batch) >= self._max_batch
            if batch:
                try:
                    self._write_batch(batch)
                except Exception:
                    logger.exception("ledger batch of %d failed; their outbox entries wait for replay", len(batch))
                self._done += len(batch)
            for mark in marks:
                mark.reached.set()


class _FlushMark:
    """Put in the queue by `flush`: set once everything queued before it is written."""

    def __init__(self, reached: threading.Event) -> None:
        self.reached = reached


_writers: list[BatchWriter] = []


def batch_writer(
    write_batch: Callable[[Sequence[Item]], None], *, name: str, linger_seconds: float = 0.0
) -> BatchWriter[Item]:
    """A writer that `flush_all()` (and so process exit) waits for."""
    writer = BatchWriter(write_batch, name=name, linger_seconds=linger_seconds)
    _writers.append(writer)
    return writer


def flush_all(timeout: float = 10.0) -> None:
    for writer in _writers:
        if not writer.flush(timeout):
            logger.warning(
                "%s: %d ledger rows still queued at exit; their outbox entries wait", writer._name, writer.pending
            )


atexit.register(flush_all)
