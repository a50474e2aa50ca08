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
    def __init__(self, load: Callable[[], T]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._value: T | None = None
        self._loaded_at = 0.0

    def get(self) -> T:
        with self._lock:
            if self._value is None or time.monotonic() - self._loaded_at > settings.SPENDPLANE_CACHE_SECONDS:
                self._value = self._load()
                self._loaded_at = time.monotonic()
            return self._value

    def forget(self) -> None:
        with self._lock:
            self._value = None
