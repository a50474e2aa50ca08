import time

from django.core.management.base import BaseCommand, CommandError

from metering.analytics import AnalyticsUnavailable, analytics_backfill, analytics_enabled, analytics_ship


class Command(BaseCommand):
    help = "Send ledger rows waiting in the outbox to ClickHouse (--backfill: the whole ledger, once)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--backfill", action="store_true", help="Send every ledger row (rows from before the sink was on)."
        )

    def handle(self, *args, **options):
        if not analytics_enabled():
            raise CommandError("CLICKHOUSE_URL is not set: there is no analytics sink to ship to.")
        started = time.monotonic()
        try:
            if options["backfill"]:
                sent = analytics_backfill(progress=self.stdout.write)
                self.stdout.write(
                    self.style.SUCCESS(f"Sent {sent:,} ledger rows in {time.monotonic() - started:.1f}s.")
                )
                return
            result = analytics_ship(budget_seconds=float("inf"), progress=self.stdout.write)
        except AnalyticsUnavailable as exc:
            raise CommandError(f"{exc}; the rows stay in the outbox.") from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Shipped {result.shipped:,} rows in {time.monotonic() - started:.1f}s; {result.waiting} waiting."
            )
        )
