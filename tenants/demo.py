"""Demo plans, tenants and keys for `make run` and `manage.py seed_demo`."""

from __future__ import annotations

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
