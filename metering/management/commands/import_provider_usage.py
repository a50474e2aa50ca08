import sys

from django.core.management.base import BaseCommand, CommandError

from metering.provider_usage import CSV_COLUMNS, ProviderUsageError
from metering.reconciliation import usage_export_import


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
                stored, first, last, result = usage_export_import(options["provider"], handle)
            except ProviderUsageError as error:
                raise CommandError(f"{error}; nothing was imported.") from None
        self.stdout.write(f"{options['provider']}: {stored} row(s) for {first}..{last}")
        self.stdout.write(self.style.SUCCESS(f"Reconciled {first}..{last}: {result.summary()}."))
