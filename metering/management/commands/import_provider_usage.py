import sys

from django.core.management.base import BaseCommand, CommandError

from metering.provider_usage import CSV_COLUMNS, ProviderUsageError, csv_report, report_store
from metering.reconciliation import reconcile_usage


class Command(BaseCommand):
    help = (
        "Import a provider console's usage export (CSV: "
        f"{CSV_COLUMNS}) as the provider's report for its days, then reconcile those days."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="The CSV file, or - for standard input.")
        parser.add_argument("--provider", required=True, help="The provider's name as the ledger records it.")

    def handle(self, *args, **options):
        try:
            handle = sys.stdin if options["path"] == "-" else open(options["path"], newline="", encoding="utf-8-sig")  # noqa: SIM115
        except OSError as error:
            raise CommandError(f"cannot read {options['path']}: {error.strerror}") from None
        with handle:
            try:
                report = csv_report(handle)
            except ProviderUsageError as error:
                raise CommandError(f"{error}; nothing was imported.") from None
        days = sorted({day for day, _ in report.figures})
        if not days:
            raise CommandError("the file has no rows; nothing was imported.")
        first, last = days[0], days[-1]
        stored = report_store(options["provider"], first, last, report)
        self.stdout.write(f"{options['provider']}: {stored} row(s) for {first}..{last}")
        result = reconcile_usage(first, last, provider=options["provider"], fetch=False, progress=self.stdout.write)
        self.stdout.write(self.style.SUCCESS(f"Reconciled {len(result.rows)} row(s)."))
