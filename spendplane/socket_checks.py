"""Zero-timeout socket checks that skip gevent's `poll`.

Connection pools check a pooled socket before handing it out (redis-py for unread or closed
connections, urllib3 for a provider that closed its keep-alive connection) with a zero-timeout
poll. Under the gevent worker `select.poll` is gevent's, which builds watchers and a result
object for each check; a zero-timeout poll never blocks, so the original one serves and costs a
few microseconds (bench/README.md: the two checks were 4% and 2% of a worker's CPU under load).
"""

from __future__ import annotations

import select

try:
    from gevent.monkey import get_original

    _poll = get_original("select", "poll")
except ImportError:  # gevent is in requirements.txt; the fallback keeps this module importable without it
    _poll = select.poll


def readable_now(sock) -> bool:
    """Whether `sock` has bytes to read or is closed or broken, without waiting."""
    poller = _poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))
