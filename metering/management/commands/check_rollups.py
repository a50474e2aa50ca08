from django.core.management.base import BaseCommand, CommandError

from metering.rollups import rollup_mismatches


class Command(BaseCommand):
    help = "Prove the hour and day rollups add up to the ledger (rows recorded up to the watermark)."

    def handle(self, *args, **options):
        problems = rollup_mismatches("hour") + rollup_mismatches("day") + rollup_mismatches("tday")
        for problem in problems[:50]:
            self.stdout.write(f"  {problem}")
        if problems:
            raise CommandError(f"{len(problems)} bucket(s) differ from the ledger; run rollup_usage --full.")
        self.stdout.write(self.style.SUCCESS("Rollups equal the ledger, hour by hour and day by day."))
