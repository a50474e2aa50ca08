"""A provider stream's read timeout, kept by one watcher a process instead of a timer per read.

Under the gevent worker, a socket with a timeout arms and cancels a timer around every wait for
data: once per relayed chunk, about a tenth of a worker's CPU while relaying streams
(bench/README.md). So while a stream is relayed, its provider socket waits without a timeout,
and a watcher greenlet looks at the streams once a second: one that has waited longer than its
route's read timeout has its socket shut down, which ends the pending read at once; the provider
client (spendplane/upstreams.py) reads that as the read timeout it is (`Watched.expired`).
A deadline is therefore kept to within a second. Without gevent (the gthread worker, the tests'
live server) sockets keep their own timeout and nothing is watched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time

import gevent
import gevent.socket

logger = logging.getLogger("spendplane.gateway")

CHECK_EVERY_SECONDS = 1.0


class Watched:
    """One stream's socket under watch; its reader sets `last_read` whenever data arrives."""

    __slots__ = ("expired", "last_read", "sock", "timeout")

    def __init__(self, sock, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        self.last_read = time.monotonic()
        self.expired = False


class StreamWatch:
    """Streams are watched only in a gevent worker, where the relays and the watcher are greenlets
    of one thread: none of these methods yields, so each runs whole without a lock."""

    def __init__(self) -> None:
        self.active: set[Watched] = set()
        self._watcher_pid: int | None = None

    def watch(self, sock) -> Watched | None:
        """Take over `sock`'s timeout for the length of a stream, or None when it is not a gevent
        socket with a timeout (then its own timeout keeps applying)."""
        timeout = getattr(sock, "timeout", None)
        if not timeout or not isinstance(sock, gevent.socket.socket):
            return None
        watched = Watched(sock, timeout)
        self.active.add(watched)
        if self._watcher_pid != os.getpid():  # a forked worker starts its own
            self._watcher_pid = os.getpid()
            gevent.spawn(self._run)
        sock.settimeout(None)
        return watched

    def forget(self, watched: Watched | None) -> None:
        """The stream ended: stop watching and give the socket its timeout back."""
        if watched is None:
            return
        self.active.discard(watched)
        if not watched.expired:
            with contextlib.suppress(OSError):  # closed meanwhile: nothing left to time
                watched.sock.settimeout(watched.timeout)

    def expire_stalled(self, now: float) -> int:
        """Shut down the socket of every stream idle past its timeout; returns how many."""
        stalled = [w for w in self.active if now - w.last_read > w.timeout]
        for watched in stalled:
            self.active.discard(watched)
            watched.expired = True
            with contextlib.suppress(OSError):  # already closed: its read has ended anyway
                watched.sock.shutdown(socket.SHUT_RDWR)
        return len(stalled)

    def _run(self) -> None:
        while True:
            time.sleep(CHECK_EVERY_SECONDS)
            try:
                self.expire_stalled(time.monotonic())
            except Exception:
                logger.exception("the stream watcher failed a round")


stream_watch = StreamWatch()
