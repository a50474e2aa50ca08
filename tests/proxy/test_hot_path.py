"""What one proxied request costs the database on PostgreSQL, once its key, routes and budget
counters are warm: the budget admission and the ledger row, one statement each."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement paths are PostgreSQL's"),
]


def test_a_warm_request_makes_two_database_statements(client, alice):
    def post(content: str):
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], "max_tokens": 4}
        return client.post(
            "/v1/chat/completions",
            json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {alice.raw_key}",
        )

    assert post("warm").status_code == 200  # caches the key, routes, prices and counter ids
    with CaptureQueriesContext(connection) as queries:
        assert post("measured").status_code == 200
    statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) == 2, statements
    assert "spendplane_reserve" in statements[0]
    assert statements[1].lstrip().startswith("WITH event AS")
