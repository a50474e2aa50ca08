"""Budgets, limits and the cap history through the management API and the admin."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from metering.models import BudgetCounter
from metering.pricing import Rates, Usage
from metering.services import LedgerEntry, usage_record
from tenants.models import Budget, CapChange, Tenant

pytestmark = pytest.mark.django_db


def test_it_creates_a_budget_with_the_documented_contract(api, alice):
    response = api.post(
        "/api/v1/budgets/",
        {
            "tenant": alice.tenant.pk,
            "scope": "end_user",
            "subject": "*",
            "period": "day",
            "limit_usd": "5.00",
            "hard": True,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["limit_usd"] == "5.000000000"
    change = CapChange.objects.get()
    assert (change.actor_label, change.before, change.after["limit_usd"]) == ("master-key", None, "5.000000000")


@pytest.mark.parametrize(
    ("scope", "subject"), [("tenant", "someone"), ("end_user", ""), ("key", "999999"), ("wizard", "x")]
)
def test_it_refuses_an_inconsistent_budget(api, alice, scope, subject):
    response = api.post(
        "/api/v1/budgets/",
        {"tenant": alice.tenant.pk, "scope": scope, "subject": subject, "period": "day", "limit_usd": "5"},
        format="json",
    )
    assert response.status_code == 400


def test_patching_caps_is_recorded_with_before_and_after(api, alice):
    api.patch(f"/api/v1/tenants/{alice.tenant.pk}/", {"rpm_limit": 10, "max_concurrency": 2}, format="json")
    change = CapChange.objects.get()
    assert change.before == {"max_concurrency": None, "rpm_limit": None}
    assert change.after == {"max_concurrency": 2, "rpm_limit": 10}
    listed = api.get("/api/v1/cap-changes/", {"tenant": alice.tenant.pk}).json()["results"]
    assert listed[0]["what"] == "tenant max_concurrency, rpm_limit"


def test_plans_and_tenants_take_rate_and_concurrency_caps(api, plan, alice):
    response = api.patch(f"/api/v1/plans/{plan.pk}/", {"max_concurrency": 4, "tpm_limit": 1000}, format="json")
    assert response.status_code == 200
    tenant = api.get(f"/api/v1/tenants/{alice.tenant.pk}/").json()
    assert tenant["effective_caps"]["max_concurrency"] == 4


def test_suspend_resume_and_raise_cap_actions(api, alice):
    assert (
        api.post(f"/api/v1/tenants/{alice.tenant.pk}/suspend/", {"reason": "chargeback"}).json()["status"]
        == "suspended"
    )
    assert api.post(f"/api/v1/tenants/{alice.tenant.pk}/resume/").json()["status"] == "active"
    raised = api.post(
        f"/api/v1/tenants/{alice.tenant.pk}/raise-cap/",
        {"limit_usd": "500", "until": "2099-01-01T00:00:00Z", "reason": "launch week"},
        format="json",
    )
    assert raised.status_code == 200, raised.content
    budget = Budget.objects.get(tenant=alice.tenant, scope="tenant", period="month")
    assert budget.limit_usd == Decimal("50") and budget.raised_limit_usd == Decimal("500")
    whats = list(CapChange.objects.order_by("id").values_list("what", flat=True))
    assert whats == ["tenant status", "tenant status", "budget tenant per month"]


def _spend(tenant, request_id, cost_tokens=1_000_000):
    usage_record(
        entry=LedgerEntry(
            request_id=request_id,
            endpoint="chat.completions",
            created_at=__import__("django.utils.timezone").utils.timezone.now(),
            status_code=200,
            latency_ms=1,
            tenant_id=tenant.pk,
            usage=Usage(prompt_tokens=cost_tokens),
            usage_source="provider",
            rates=Rates(Decimal("1"), Decimal("1"), Decimal("1"), Decimal("1"), "t"),
        )
    )


def test_the_usage_endpoint_shows_spent_reserved_and_remaining_per_budget(api, alice):
    Budget.objects.create(tenant=alice.tenant, scope="feature", subject="search", period="day", limit_usd=Decimal("2"))
    _spend(alice.tenant, "r1")
    usage = api.get(f"/api/v1/tenants/{alice.tenant.pk}/usage/").json()
    by_scope = {(b["scope"], b["period"]): b for b in usage["budgets"]}
    tenant_month = by_scope[("tenant", "month")]
    assert (tenant_month["spent_usd"], tenant_month["remaining_usd"]) == ("1.000000000", "49.000000000")
    assert tenant_month["reserved_usd"] == "0.000000000"
    assert by_scope[("feature", "day")]["spent_usd"] == "0.000000000"


def test_reset_period_forgives_spend_and_is_recorded(api, alice):
    _spend(alice.tenant, "r1")
    response = api.post(f"/api/v1/tenants/{alice.tenant.pk}/reset-period/", {"scope": "tenant", "period": "month"})
    assert response.status_code == 200
    assert response.json()["spent_usd"] == "0.000000000"
    assert BudgetCounter.objects.get(tenant=alice.tenant).spent() == 0
    assert CapChange.objects.get().before == {"spent_usd": None}


def test_support_edits_a_cap_in_the_admin_and_it_appears_in_the_history(client, alice):
    client.force_login(User.objects.create_superuser("sue", "sue@example.com", "pw"))
    page = client.get(f"/admin/tenants/tenant/{alice.tenant.pk}/change/")
    form = page.context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    data.update({"monthly_budget_usd": "12.5", "plan": alice.tenant.plan_id})
    for prefix in ("budgets", "rate_limits", "api_keys", "cap_changes"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    data["api_keys-TOTAL_FORMS"] = data["api_keys-INITIAL_FORMS"] = 0
    response = client.post(f"/admin/tenants/tenant/{alice.tenant.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    assert Tenant.objects.get(pk=alice.tenant.pk).monthly_budget_usd == Decimal("12.5")
    change = CapChange.objects.get()
    assert (change.actor_label, change.after) == ("sue", {"monthly_budget_usd": "12.5"})
    history = client.get(f"/admin/tenants/tenant/{alice.tenant.pk}/change/")
    assert b"Cap history" in history.content and b"sue" in history.content


def test_support_actions_validate_their_input(api, alice):
    assert api.post(f"/api/v1/tenants/{alice.tenant.pk}/reset-period/", {"scope": "galaxy"}).status_code == 400
    bad = api.post(
        f"/api/v1/tenants/{alice.tenant.pk}/raise-cap/", {"limit_usd": "-1", "until": "2099-01-01T00:00:00Z"}
    )
    assert bad.status_code == 400 and "limit_usd" in bad.json()
    assert not CapChange.objects.exists()
