from django.core.management.base import BaseCommand

from metering.budgets import budget_sweep


class Command(BaseCommand):
    help = "Delete budget reservations that expired over an hour ago (they no longer count)."

    def handle(self, *args, **options):
        self.stdout.write(f"Deleted {budget_sweep()} expired reservation(s).")
