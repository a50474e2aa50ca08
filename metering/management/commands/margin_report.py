from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from metering.margins import margin_report_compute, margins_between, month_range, to_date
from metering.pricing import usd_str


class Command(BaseCommand):
    help = "Compute and store margin reports for a month (--period 2026-11) or a day (--day 2026-11-27)."

    def add_arguments(self, parser):
        parser.add_argument("--period", help="YYYY-MM (default: this month)")
        parser.add_argument("--day", help="YYYY-MM-DD: a daily report instead")

    def handle(self, *args, **options):
        try:
            if options["day"]:
                start = end = date.fromisoformat(options["day"])
                count = margin_report_compute(period="day", start=start)
            else:
                start, end = to_date(*month_range(options["period"] or timezone.now().strftime("%Y-%m")))
                count = margin_report_compute(period="month", start=start)
        except ValueError as exc:
            raise CommandError(f"Bad period: {exc}") from None
        self.stdout.write(f"{'tenant':30} {'revenue':>14} {'AI cost':>14} {'margin':>14} {'margin %':>9}")
        for m in margins_between(start, end):
            pct = "n/a" if m.margin_pct is None else f"{m.margin_pct}%"
            self.stdout.write(
                f"{m.tenant_name[:30]:30} {usd_str(m.revenue_usd)[:-5]:>14} {usd_str(m.cost_usd)[:-3]:>14} "
                f"{usd_str(m.margin_usd)[:-5]:>14} {pct:>9}"
            )
        self.stdout.write(self.style.SUCCESS(f"Stored {count} report(s) for {start}..{end}."))
