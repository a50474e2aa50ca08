import time

from django.core.management.base import BaseCommand

from metering.rollups import rollup_usage


class Command(BaseCommand):
    help = "Roll ledger rows recorded since the watermark into hour and day rollups (--full: everything)."

    def add_arguments(self, parser):
        parser.add_argument("--full", action="store_true", help="Recompute every hour in the ledger.")

    def handle(self, *args, **options):
        started = time.monotonic()
        result = rollup_usage(full=options["full"], progress=self.stdout.write)
        self.stdout.write(
            self.style.SUCCESS(
                f"Rolled up {result.hours} hour(s) and {result.days} day(s) into {result.hour_rows} hour rows "
                f"in {time.monotonic() - started:.1f}s; watermark {result.recorded_through:%Y-%m-%d %H:%M:%S} UTC."
            )
        )
