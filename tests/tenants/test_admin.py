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
