"""gunicorn's gevent worker, except that a stopping worker closes its idle keep-alive connections,
and that a socket's `sendall` tries one plain send before gevent's general loop.

The stock worker stops accepting, then waits for every connection's greenlet to finish, and a
greenlet waiting for a keep-alive client's next request (up to `keepalive`, 75 s here) only ends
at `graceful_timeout`: every restart took 30 s and ended by killing whatever was still running.
Here the greenlets idle between requests are ended as soon as the worker is told to stop;
requests in progress, open streams included, run to their end as before.

gevent's `sendall` asks the kernel for the socket's send buffer size (a `getsockopt` call) and
reads the clock on every call, to cut large payloads into chunks: per relayed stream chunk, per
response and per Redis command. Nearly every one of those payloads fits the send buffer, so one
`send` finishes it; whatever it leaves goes through gevent's loop as before (waiting, timeout).
"""

from __future__ import annotations

import contextlib

import gevent
import gevent.socket
from gunicorn.workers.ggevent import GeventWorker as StockGeventWorker


def send_once_first(socket_class) -> None:
    """Make `socket_class.sendall` try one non-blocking send of the whole payload first. Only on
    that exact class: TLS sockets subclass it and must encrypt (their `sendall` calls this one)."""
    if getattr(socket_class.sendall, "sends_once_first", False):
        return
    general = socket_class.sendall

    def sendall(self, data, flags=0):
        if type(data) is bytes and type(self) is socket_class:
            try:
                sent = self._sock.send(data, flags)
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent == len(data):
                return None
            data = memoryview(data)[sent:]
        return general(self, data, flags)

    sendall.sends_once_first = True
    socket_class.sendall = sendall


class GeventWorker(StockGeventWorker):
    def patch(self) -> None:
        super().patch()
        send_once_first(gevent.socket.socket)

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
