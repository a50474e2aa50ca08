"""A table read from the database and held in this process for SPENDPLANE_CACHE_SECONDS: what the
hot path consults instead of querying (routes, price overrides). `forget()` drops it at once in
this process; other processes pick a change up within the TTL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from django.conf import settings

T = TypeVar("T")


class ProcessTable(Generic[T]):
    """The load runs without a lock held: it waits for a database connection, and a lock held
    across that wait deadlocked a busy process (requests holding the pool's connections queued on
    the lock while its holder queued on the pool). Two requests may load at once; the later
    answer is kept, unless `forget()` ran meanwhile."""

    def __init__(self, load: Callable[[], T]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._value: T | None = None
        self._loaded_at = 0.0
        self._generation = 0

    def get(self) -> T:
        value, loaded_at = self._value, self._loaded_at
        if value is not None and time.monotonic() - loaded_at <= settings.SPENDPLANE_CACHE_SECONDS:
            return value
        generation = self._generation
        value = self._load()
        with self._lock:
            if generation == self._generation:
                self._value, self._loaded_at = value, time.monotonic()
        return value

    def forget(self) -> None:
        with self._lock:
            self._generation += 1
            self._value = None
