"""psycopg's wait on a gevent io watcher, for the gevent worker.

psycopg notices gevent's patched `select` and leaves its C wait for `wait_poll`, which under
gevent builds a `poll` object, its watchers and a result queue on every statement: 7% of a
worker's CPU under load (bench/README.md). Here each wait starts one io watcher and one timer on
the hub and sleeps until either fires: about 45 µs less CPU a statement. psycopg's generators
and its contract (`interval` wake-ups sending READY_NONE, `timeout` raising `_WaitTimeout`) are
kept as they are.
"""

from __future__ import annotations

from time import monotonic

import psycopg.waiting
from psycopg import errors

# libev's EV_READ / EV_WRITE have the values of psycopg's Wait.R / Wait.W and Ready.R / Ready.W.
_READ_WRITE = 3


def wait(gen, fileno: int, interval: float = 0.0, timeout: float | None = None):
    from gevent.hub import Waiter, get_hub

    hub = get_hub()
    loop = hub.loop
    deadline = monotonic() + timeout if timeout is not None else None
    interval = max(interval, 0.0)
    try:
        wanted = next(gen)
        while True:
            seconds = interval if deadline is None else max(0.0, min(interval, deadline - monotonic()))
            waiter = Waiter(hub)
            watcher = loop.io(fileno, int(wanted))
            timer = loop.timer(seconds)
            watcher.start(waiter.switch, pass_events=True)
            timer.start(waiter.switch, 0)
            try:
                ready = waiter.get() & _READ_WRITE
            finally:
                watcher.close()
                timer.close()
            wanted = gen.send(ready)
            if deadline is not None and monotonic() >= deadline:
                raise errors._WaitTimeout("wait timeout expired")
    except StopIteration as stop:
        return stop.value


def install() -> None:
    """Use this wait for every psycopg statement in this process (call it after gevent's patching)."""
    psycopg.waiting.wait = wait
