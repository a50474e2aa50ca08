"""Demo plans, tenants and keys for `make run` and `manage.py seed_demo`."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction

from . import services
from .models import Plan, Tenant
from .roles import roles_setup

DEMO_PLANS = {
    "Starter": {"monthly_price_usd": Decimal("49"), "monthly_budget_usd": Decimal("5"), "rpm_limit": 60},
    "Growth": {"monthly_price_usd": Decimal("499"), "monthly_budget_usd": Decimal("100"), "rpm_limit": 600},
}
DEMO_TENANTS = [
    ("Acme Robotics", "acme", "Growth"),
    ("Globex Legal", "globex", "Starter"),
    ("Initech Support", "initech", "Growth"),
]


@transaction.atomic
def seed_demo(*, admin_password: str = "admin") -> dict[str, str]:  # noqa: S107 - a demo login
    """Create what is missing and a fresh key per demo tenant; returns {external_id: plaintext key}."""
    plans = {name: Plan.objects.get_or_create(name=name, defaults=caps)[0] for name, caps in DEMO_PLANS.items()}
    keys = {}
    for name, external_id, plan in DEMO_TENANTS:
        tenant, _ = Tenant.objects.get_or_create(external_id=external_id, defaults={"name": name, "plan": plans[plan]})
        keys[external_id] = services.api_key_create(tenant=tenant, name="demo")[1]
    User = get_user_model()
    if not User.objects.filter(username="admin").exists():
        User.objects.create_superuser("admin", "admin@example.com", admin_password)
    groups = roles_setup()
    for name in ("finance", "support"):
        user, created = User.objects.get_or_create(username=name, defaults={"is_staff": True})
        if created:
            user.set_password(name)
            user.save()
        user.groups.add(groups[name])
    return keys


def seed_demo_billing(billing) -> str:
    """Acme bills through the bundled Stripe-shaped server: its plan plus seats this month, less a
    goodwill credit note; its margin is then reckoned on that invoice, not on its plan's price."""
    from datetime import UTC, datetime

    from .stripe_revenue import stripe_client, stripe_revenue_sync

    Tenant.objects.filter(external_id="acme").update(billing_customer_id="cus_demo_acme", revenue_source="invoiced")
    today = datetime.now(UTC).date()
    month_start = today.replace(day=1)
    month_end = (month_start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    invoice = billing.add_invoice(
        customer="cus_demo_acme",
        amount_cents=64900,  # Growth $499 + 3 seats at $50
        tax_cents=5192,
        period_start=month_start,
        period_end=month_end,
        invoice_id=f"in_demo_acme_{month_start:%Y%m}",
    )
    billing.add_credit_note(invoice=invoice, amount_cents=5000)
    result = stripe_revenue_sync(client=stripe_client(api_key=billing.state.api_key, api_base=billing.url))
    return str(result)
