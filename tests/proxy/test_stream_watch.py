"""The stream watcher's own rules (the gevent worker's path end to end: tests/e2e/test_server_model.py)."""

from __future__ import annotations

import socket
import time

from spendplane.stream_watch import StreamWatch, Watched


def test_a_socket_that_is_not_gevents_keeps_its_own_timeout():
    watch = StreamWatch()
    left, right = socket.socketpair()
    with left, right:
        left.settimeout(5.0)
        assert watch.watch(left) is None
        assert left.gettimeout() == 5.0
        assert not watch.active


def test_only_streams_idle_past_their_timeout_are_shut_down():
    watch = StreamWatch()
    stalled_pair, busy_pair = socket.socketpair(), socket.socketpair()
    stalled, busy = Watched(stalled_pair[0], 1.0), Watched(busy_pair[0], 1.0)
    watch.active |= {stalled, busy}
    now = time.monotonic()
    stalled.last_read = now - 1.5
    busy.last_read = now - 0.5
    assert watch.expire_stalled(now) == 1
    assert stalled.expired and not busy.expired
    assert watch.active == {busy}
    stalled_pair[0].settimeout(1)
    assert stalled_pair[0].recv(10) == b"", "a read on the shut-down socket ends at once"
    busy_pair[1].sendall(b"x")
    assert busy_pair[0].recv(10) == b"x"
    for pair in (stalled_pair, busy_pair):
        for end in pair:
            end.close()


def test_forgetting_a_stream_gives_its_socket_the_timeout_back():
    watch = StreamWatch()
    left, right = socket.socketpair()
    with left, right:
        watched = Watched(left, 7.0)
        watch.active.add(watched)
        left.settimeout(None)
        watch.forget(watched)
        assert left.gettimeout() == 7.0
        assert not watch.active
        watch.forget(None)  # a stream that was never watched
