"""Schemathesis drives every operation of the management API's OpenAPI schema with generated
requests, valid and invalid: none may answer with a server error."""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import MASTER_KEY


@pytest.fixture
def in_process_requests():
    """Requests through the WSGI app inside the test's transaction: like Django's test client,
    keep the request signals from closing the test's database connection."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


# Loaded lazily by schemathesis on first use; generating the schema reads no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.django_db
def test_no_management_operation_answers_with_a_server_error(case, world, in_process_requests):
    case.call_and_validate(headers={"Authorization": f"Bearer {MASTER_KEY}"}, checks=[not_a_server_error])
