from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from tenants import services
from tenants.models import Plan, Tenant

DEMO_TENANTS = [
    ("Acme Robotics", "acme", "Growth"),
    ("Globex Legal", "globex", "Starter"),
    ("Initech Support", "initech", "Growth"),
]


class Command(BaseCommand):
    help = "Create demo plans, tenants, an admin user and a fresh API key (printed once)."

    def add_arguments(self, parser):
        parser.add_argument("--admin-password", default="admin", help="Password for the 'admin' superuser.")
        parser.add_argument("--quiet", action="store_true", help="Print only the new key.")

    @transaction.atomic
    def handle(self, *args, **options):
        starter, _ = Plan.objects.get_or_create(
            name="Starter",
            defaults={"monthly_price_usd": Decimal("49"), "monthly_budget_usd": Decimal("5"), "rpm_limit": 60},
        )
        growth, _ = Plan.objects.get_or_create(
            name="Growth",
            defaults={"monthly_price_usd": Decimal("499"), "monthly_budget_usd": Decimal("100"), "rpm_limit": 600},
        )
        plans = {"Starter": starter, "Growth": growth}
        tenants = []
        for name, external_id, plan in DEMO_TENANTS:
            tenant, _ = Tenant.objects.get_or_create(external_id=external_id, defaults={"name": name, "plan": plans[plan]})
            tenants.append(tenant)
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", options["admin_password"])
        keys = {}
        for tenant in tenants:
            _, raw = services.api_key_create(tenant=tenant, name="demo")
            keys[tenant.external_id] = raw
        if options["quiet"]:
            self.stdout.write(keys["acme"])
            return
        self.stdout.write(self.style.SUCCESS("Demo data ready: plans Starter and Growth, tenants " + ", ".join(keys)))
        for external_id, raw in keys.items():
            self.stdout.write(f"  {external_id:8} key: {raw}")
