"""The budget reservation's cursor: a pooled connection borrowed for one statement, not kept as
the thread's Django connection for the rest of the request."""

from __future__ import annotations

import pytest
from django.db import DataError, connection, transaction

from metering.budgets import borrowed_cursor

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not hasattr(connection, "borrowed_cursor"), reason="needs PostgreSQL (spendplane.postgresql)"),
    pytest.mark.usefixtures("pooled"),
]


@pytest.fixture
def pooled():
    """This test process runs without the pool (tests/conftest.py); these tests put it back."""
    connection.close()
    options = connection.settings_dict.setdefault("OPTIONS", {})
    options["pool"] = {"min_size": 1, "max_size": 2, "timeout": 5}
    try:
        yield
    finally:
        connection.close()
        connection.close_pool()
        options.pop("pool")


def _checkouts() -> int:
    return connection.pool.get_stats().get("requests_num", 0)


def test_a_statement_borrows_a_connection_and_gives_it_back_at_once():
    connection.close()
    before = _checkouts()
    with borrowed_cursor() as cursor:
        cursor.execute("SELECT %s::int + 1", [41])
        assert cursor.fetchone() == (42,)
    assert connection.connection is None, "not made the thread's connection"
    assert _checkouts() == before + 1
    # Back in the pool: all of its max_size (2) connections can be taken again.
    pool = connection.pool
    taken = [pool.getconn(timeout=3) for _ in range(2)]
    for conn in taken:
        pool.putconn(conn)


def test_a_thread_holding_a_connection_uses_it_rather_than_taking_a_second():
    connection.ensure_connection()
    held = connection.connection
    before = _checkouts()
    with borrowed_cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    assert _checkouts() == before
    assert pid == held.info.backend_pid


def test_inside_a_transaction_the_statement_joins_it():
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT txid_current()")
            outer = cursor.fetchone()[0]
        with borrowed_cursor() as cursor:
            cursor.execute("SELECT txid_current()")
            assert cursor.fetchone()[0] == outer


def test_a_failed_statement_raises_djangos_error_and_the_connection_is_usable_again():
    connection.close()
    with pytest.raises(DataError), borrowed_cursor() as cursor:
        cursor.execute("SELECT 1 / %s::int", [0])
    with borrowed_cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert connection.connection is None
