"""The audit log: every administrative create, change and delete, through the API, the admin or a
command, with who, from where, before and after; secrets never as values; read-only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from metering.models import Provider, WebhookEndpoint
from tenants import services
from tenants.models import AuditEntry, Budget, Plan

pytestmark = pytest.mark.django_db


def entries(object_type: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(object_type=object_type).order_by("id"))


def test_api_writes_are_recorded_with_who_what_before_after_and_where(api, plan):
    created = api.post(
        "/api/v1/tenants/", {"name": "Umbrella", "external_id": "umb", "plan": plan.pk}, format="json",
        REMOTE_ADDR="10.1.2.3",
    )  # fmt: skip
    assert created.status_code == 201
    tenant_id = created.json()["id"]
    api.patch(f"/api/v1/tenants/{tenant_id}/", {"monthly_budget_usd": "12.50"}, format="json")
    api.patch(f"/api/v1/tenants/{tenant_id}/", {"monthly_budget_usd": "12.50"}, format="json")  # no change

    made, changed = entries("tenants.tenant")
    assert (made.action, made.actor_label, made.remote_addr) == ("created", "master-key", "10.1.2.3")
    assert made.via == "POST /api/v1/tenants/" and made.before is None
    assert made.after["name"] == "Umbrella" and made.tenant_id == tenant_id
    assert (changed.action, changed.before, changed.after) == (
        "changed",
        {"monthly_budget_usd": None},
        {"monthly_budget_usd": "12.500000000"},
    )
    listed = api.get("/api/v1/audit/", {"object_type": "tenants.tenant", "tenant": tenant_id}).json()
    assert [row["action"] for row in listed["results"]] == ["changed", "created"]


def test_keys_budgets_and_deletes_are_recorded(api, alice):
    key = api.post(f"/api/v1/tenants/{alice.tenant.pk}/keys/", {"name": "ci"}, format="json").json()
    api.delete(f"/api/v1/tenants/{alice.tenant.pk}/keys/{key['id']}/")
    key_rows = entries("tenants.apikey")
    assert [r.action for r in key_rows][-2:] == ["created", "changed"]
    assert key_rows[-1].after.keys() == {"revoked_at"}
    assert key_rows[-2].after["key_hash"] == "(secret)"  # the hash is never written out
    budget = api.post(
        "/api/v1/budgets/",
        {"tenant": alice.tenant.pk, "scope": "feature", "subject": "search", "period": "day", "limit_usd": "3"},
        format="json",
    ).json()
    assert api.delete(f"/api/v1/budgets/{budget['id']}/").status_code == 204
    deleted = entries("tenants.budget")[-1]
    assert (deleted.action, deleted.before["subject"], deleted.after) == ("deleted", "search", None)
    assert not Budget.objects.filter(pk=budget["id"]).exists()


def test_a_providers_secrets_are_masked_but_their_change_is_recorded(api):
    created = api.post(
        "/api/v1/providers/",
        {"name": "azure", "kind": "openai_compatible", "base_url": "https://x.example/v1", "api_key": "sk-one"},
        format="json",
    ).json()
    api.patch(f"/api/v1/providers/{created['id']}/", {"api_key": "sk-two"}, format="json")
    made, rotated = entries("metering.provider")
    assert made.after["api_key"] == "(secret)" and made.after["admin_api_key"] == ""
    assert rotated.before == {"api_key": "(secret)"} and rotated.after == {"api_key": "(changed)"}
    text = str(list(AuditEntry.objects.values_list("before", "after")))
    assert "sk-one" not in text and "sk-two" not in text
    WebhookEndpoint.objects.create(url="https://hooks.example/x", secret="whsec-1")
    assert "whsec-1" not in str(entries("metering.webhookendpoint")[0].after)


def test_admin_changes_name_the_staff_user(client, alice):
    support = User.objects.create_superuser("sam", "sam@example.com", "pw")
    client.force_login(support)
    response = client.post(
        "/admin/tenants/plan/add/",
        {"name": "Scale", "monthly_price_usd": "500", "allowed_models": "[]", "guard_role_thresholds": "{}",
         "guard_mode": "block", "loop_max_repeats": "0", "loop_window_seconds": "60"},
    )  # fmt: skip
    assert response.status_code == 302, response.content[:2000]
    entry = entries("tenants.plan")[-1]
    assert (entry.actor_id, entry.actor_label, entry.action) == (support.pk, "sam", "created")
    assert entry.via == "POST /admin/tenants/plan/add/"


def test_a_command_or_job_is_the_system(alice):
    services.tenant_suspend(tenant=alice.tenant)
    entry = entries("tenants.tenant")[-1]
    assert (entry.actor_label, entry.remote_addr, entry.after) == ("system", None, {"status": "suspended"})


def test_the_audit_log_cannot_be_written_through_the_api_or_the_admin(api, client, alice):
    Plan.objects.create(name="Tiny", monthly_price_usd=Decimal("1"))
    assert api.post("/api/v1/audit/", {}, format="json").status_code == 405
    entry = AuditEntry.objects.first()
    assert api.delete(f"/api/v1/audit/{entry.pk}/").status_code == 405
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    assert client.get("/admin/tenants/auditentry/").status_code == 200
    assert client.post(f"/admin/tenants/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403


def test_the_proxy_path_writes_no_audit_entry(openai_client, alice):
    before = AuditEntry.objects.count()
    openai_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert AuditEntry.objects.count() == before


def test_re_encrypting_secrets_changes_nothing_anyone_sees(db):
    Provider.objects.create(name="p1", kind="openai", base_url="https://api.example/v1", api_key="sk-secret-1")
    call_command("rotate_secrets")
    assert [e.action for e in entries("metering.provider")] == ["created"]
    assert "sk-secret-1" not in str(list(AuditEntry.objects.values_list("before", "after")))
