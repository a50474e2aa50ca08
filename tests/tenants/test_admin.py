from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tenants.models import ApiKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged_in(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/admin/tenants/tenant/",
        "/admin/tenants/plan/",
        "/admin/tenants/apikey/",
        "/admin/metering/usageevent/",
        "/admin/metering/provider/add/",
        "/admin/metering/priceoverride/",
    ],
)
def test_admin_pages_render(admin_client_logged_in, alice, url):
    assert admin_client_logged_in.get(url).status_code == 200


def test_the_tenant_page_shows_its_limits_section(admin_client_logged_in, alice):
    page = admin_client_logged_in.get(f"/admin/tenants/tenant/{alice.tenant.pk}/change/")
    assert page.status_code == 200
    assert b"Limits" in page.content


def test_adding_a_key_in_the_admin_shows_the_plaintext_once(admin_client_logged_in, alice):
    response = admin_client_logged_in.post(
        "/admin/tenants/apikey/add/", {"tenant": alice.tenant.pk, "name": "from admin"}, follow=True
    )
    assert response.status_code == 200
    key = ApiKey.objects.get(name="from admin")
    shown = [str(m) for m in response.context["messages"]]
    raw = shown[0].split(": ")[1].split(" ")[0]
    assert key.matches(raw)


def test_revoking_keys_from_the_admin(admin_client_logged_in, alice):
    admin_client_logged_in.post(
        "/admin/tenants/apikey/", {"action": "revoke", "_selected_action": [alice.key.pk]}, follow=True
    )
    alice.key.refresh_from_db()
    assert alice.key.revoked_at is not None


def test_revenue_added_and_corrected_in_the_admin_keeps_its_history(admin_client_logged_in, alice):
    from tenants.models import RevenueEntry

    form = {
        "tenant": alice.tenant.pk,
        "source": "manual",
        "external_id": "INV-9",
        "period_start": "2026-11-01",
        "period_end": "2026-11-30",
        "amount_usd": "120.00",
        "currency": "USD",
        "description": "seats",
    }
    refused = admin_client_logged_in.post("/admin/tenants/revenueentry/add/", {**form, "currency": "EUR"})
    assert refused.status_code == 200 and b"only USD" in refused.content
    assert not RevenueEntry.objects.exists()
    added = admin_client_logged_in.post("/admin/tenants/revenueentry/add/", form)
    assert added.status_code == 302, added.content
    entry = RevenueEntry.objects.get()
    changed = admin_client_logged_in.post(
        f"/admin/tenants/revenueentry/{entry.pk}/change/", {**form, "amount_usd": "100.00"}
    )
    assert changed.status_code == 302
    entry.refresh_from_db()
    assert entry.amount_usd == 100 and entry.history[0]["amount_usd"] == "120.00"
    assert entry.history[0]["by"] == "root"
    assert admin_client_logged_in.get("/admin/tenants/revenueentry/?q=INV-9").status_code == 200
