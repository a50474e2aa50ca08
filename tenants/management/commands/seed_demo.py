from django.core.management.base import BaseCommand

from tenants.demo import seed_demo


class Command(BaseCommand):
    help = "Create demo plans, tenants, an 'admin' superuser and a fresh API key per tenant (printed once)."

    def add_arguments(self, parser):
        parser.add_argument("--admin-password", default="admin", help="Password for the 'admin' superuser.")

    def handle(self, *args, **options):
        keys = seed_demo(admin_password=options["admin_password"])
        self.stdout.write(self.style.SUCCESS("Demo data ready: plans Starter and Growth; tenants " + ", ".join(keys)))
        for external_id, raw in keys.items():
            self.stdout.write(f"  {external_id:8} key: {raw}")
