"""Django's PostgreSQL backend, with a cheaper health check for its connection pool and a
server-binding cursor for the hot path.

Django's pool checks every connection it hands out (CONN_HEALTH_CHECKS): one extra round trip on
every request of a busy gateway. Here a connection is checked at most once a second; one that
broke within that second fails its first statement instead, that request gets a 503, and the pool
drops the connection.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

RECHECK_AFTER_SECONDS = 1.0


def check_unless_recent(conn) -> None:
    now = time.monotonic()
    if now - getattr(conn, "_spendplane_checked_at", float("-inf")) < RECHECK_AFTER_SECONDS:
        return
    ConnectionPool.check_connection(conn)
    conn._spendplane_checked_at = now


class DatabaseWrapper(base.DatabaseWrapper):
    def bound_cursor(self):
        """A cursor whose parameters travel apart from the statement (psycopg's server-side binding),
        for the gateway's hot statements: psycopg renders no literals, and prepares a statement once
        a connection has run it five times, so PostgreSQL stops parsing and planning it."""
        self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            return self._prepare_cursor(base.ServerBindingCursor(self.connection))

    @contextmanager
    def borrowed_cursor(self):
        """A server-binding cursor for one autocommit statement, on a connection borrowed from the
        pool and given back as soon as the statement is read, without making it the thread's
        Django connection: that set-up and tear-down (ensure_connection, autocommit, the pool
        check, closing it before the provider call) was about 5% of a worker's samples under load.
        A thread that already holds a connection, or is in a transaction, uses its own instead of
        taking a second one."""
        pool = self.pool
        if pool is None or self.connection is not None or self.in_atomic_block:
            with self.bound_cursor() as cursor:
                yield cursor
            return
        with self.wrap_database_errors:
            if pool.closed:
                pool.open()
            with pool.connection() as conn, base.ServerBindingCursor(conn) as cursor:
                yield cursor

    @property
    def pool(self):
        pool = super().pool
        # Django passes its own check when it builds the pool; psycopg_pool has no public setter.
        if pool is not None and pool._check is not None and pool._check is not check_unless_recent:
            pool._check = check_unless_recent
        return pool
