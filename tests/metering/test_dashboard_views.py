"""Dashboard access and rendering without a browser (the browser tests are in tests/e2e)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tenants.roles import roles_setup

pytestmark = pytest.mark.django_db


@pytest.fixture
def finance(client):
    user = User.objects.create_user("fin", is_staff=True)
    user.groups.add(roles_setup()["finance"])
    client.force_login(user)
    return client


def test_the_dashboards_need_a_login(client, alice):
    response = client.get("/dashboard/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_without_the_margin_permission_are_refused(client, alice):
    client.force_login(User.objects.create_user("nobody", is_staff=True))
    assert client.get("/dashboard/").status_code == 403
    assert client.get(f"/dashboard/tenants/{alice.tenant.pk}/").status_code == 403


@pytest.mark.parametrize(
    "path",
    ["/dashboard/", "/dashboard/overview/", "/dashboard/margins.csv", "/dashboard/?period=2026-13&sort=bogus&page=99"],
)
def test_finance_sees_every_page(finance, alice, path):
    assert finance.get(path).status_code == 200


def test_an_htmx_request_gets_only_the_table(finance, alice):
    full = finance.get("/dashboard/?sort=name")
    partial = finance.get("/dashboard/?sort=name", HTTP_HX_REQUEST="true")
    assert b"<html" in full.content and b"<html" not in partial.content
    assert partial.content.strip().startswith(b'<div id="margin-table">')


def test_the_tenant_page_and_its_live_requests(finance, alice):
    assert finance.get(f"/dashboard/tenants/{alice.tenant.pk}/").status_code == 200
    assert b"recent-requests" in finance.get(f"/dashboard/tenants/{alice.tenant.pk}/requests/").content
    assert finance.get("/dashboard/tenants/999999/").status_code == 404


def test_finance_cannot_change_caps_in_the_admin(finance, alice):
    response = finance.post(f"/admin/tenants/tenant/{alice.tenant.pk}/change/", {"monthly_budget_usd": "1"})
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("cost_share", "cost_share_pct"),
        ("cost_per_user", "cost_per_active_user"),
        ("projected_margin", "projected_margin"),
    ],
)
def test_the_unit_economics_columns_sort_both_ways_with_blanks_last(finance, alice, key, field):
    from decimal import Decimal

    from metering.dashboards import MarginRow, filter_and_sort

    def row(pk, value):
        zero = Decimal(0)
        return MarginRow(pk, f"T{pk}", "Pro", zero, zero, zero, None, zero, None, None, None, 0, **{field: value})

    rows = [row(1, Decimal("2.5")), row(2, None), row(3, Decimal("-7")), row(4, Decimal("40"))]
    assert [r.tenant_id for r in filter_and_sort(rows, sort=f"-{key}")] == [4, 1, 3, 2]
    assert [r.tenant_id for r in filter_and_sort(rows, sort=key)] == [2, 3, 1, 4]
    page = finance.get(f"/dashboard/?sort=-{key}")
    assert page.status_code == 200 and f'data-sort="{key}"'.encode() in page.content
