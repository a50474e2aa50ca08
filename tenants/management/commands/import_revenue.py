import sys
import time

from django.core.management.base import BaseCommand, CommandError

from tenants.revenue import CSV_COLUMNS, revenue_entries_import, revenue_rows_from_csv


class Command(BaseCommand):
    help = (
        "Import invoiced revenue from a CSV export (one entry a row: "
        f"{CSV_COLUMNS}). Idempotent on source + external_id; every row lands or none does."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="The CSV file, or - for standard input.")
        parser.add_argument("--source", default="csv", help="The entries' source where a row names none (csv).")
        parser.add_argument("--dry-run", action="store_true", help="Check and count every row, write nothing.")

    def handle(self, *args, **options):
        started = time.monotonic()
        try:
            handle = sys.stdin if options["path"] == "-" else open(options["path"], newline="", encoding="utf-8-sig")  # noqa: SIM115
        except OSError as error:
            raise CommandError(f"cannot read {options['path']}: {error.strerror}") from None
        with handle:
            items, errors = revenue_rows_from_csv(handle, source=options["source"])
        if errors:
            for problem in errors[:50]:
                self.stderr.write(problem)
            more = f" (first 50 shown of {len(errors)})" if len(errors) > 50 else ""
            summary = errors[0] if len(errors) == 1 else f"{len(errors)} row(s) refused{more}"
            raise CommandError(f"{summary}; nothing was imported.")
        total = len(items)
        step = max(1, total // 10)

        def progress(done: int) -> None:
            if done % step == 0 or done == total:
                self.stdout.write(f"  {done}/{total} rows")

        result = revenue_entries_import(items, dry_run=options["dry_run"], actor="import_revenue", progress=progress)
        prefix = "Dry run, nothing written: " if options["dry_run"] else ""
        self.stdout.write(self.style.SUCCESS(f"{prefix}{result} in {time.monotonic() - started:.1f}s"))
