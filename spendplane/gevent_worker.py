"""gunicorn's gevent worker, except that a stopping worker closes its idle keep-alive connections.

The stock worker stops accepting, then waits for every connection's greenlet to finish, and a
greenlet waiting for a keep-alive client's next request (up to `keepalive`, 75 s here) only ends
at `graceful_timeout`: every restart took 30 s and ended by killing whatever was still running.
Here the greenlets idle between requests are ended as soon as the worker is told to stop;
requests in progress, open streams included, run to their end as before.
"""

from __future__ import annotations

import contextlib

import gevent
from gunicorn.workers.ggevent import GeventWorker as StockGeventWorker


class GeventWorker(StockGeventWorker):
    def init_process(self) -> None:
        self.idle_greenlets: set = set()
        super().init_process()

    @contextlib.contextmanager
    def timeout_ctx(self):
        """The wait for a keep-alive connection's next request (gunicorn's base_async loop)."""
        current = gevent.getcurrent()
        self.idle_greenlets.add(current)
        try:
            with gevent.Timeout(self.cfg.keepalive, False):
                yield
        finally:
            self.idle_greenlets.discard(current)

    def notify(self) -> None:
        # Called every second, in the serving loop and in the graceful-shutdown loop alike.
        super().notify()
        if not self.alive and self.idle_greenlets:
            gevent.killall(list(self.idle_greenlets), block=False)
