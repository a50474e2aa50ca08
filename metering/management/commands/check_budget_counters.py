from django.core.management.base import BaseCommand, CommandError

from metering.budgets import budget_counter_drift


class Command(BaseCommand):
    help = "Prove every budget counter equals the ledger's spend for its scope and period; --fix rebuilds."

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="Set drifted counters to the ledger's figure.")

    def handle(self, *args, **options):
        drifted = budget_counter_drift(fix=options["fix"])
        for counter, expected in drifted:
            self.stdout.write(f"  {counter}: ledger says ${expected}")
        if drifted and not options["fix"]:
            raise CommandError(f"{len(drifted)} counter(s) differ from the ledger (rerun with --fix).")
        self.stdout.write(self.style.SUCCESS(f"Counters match the ledger ({len(drifted)} fixed)."))
