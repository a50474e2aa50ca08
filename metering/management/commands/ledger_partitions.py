from datetime import date

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from metering.models import LedgerArchive
from metering.partitions import (
    PartitionError,
    ledger_is_partitioned,
    ledger_partition_export,
    ledger_partitions,
    ledger_partitions_ensure,
    ledger_retention_apply,
)


def _month(text: str) -> date:
    try:
        return date.fromisoformat(f"{text}-01")
    except ValueError as exc:
        raise CommandError(f"{text!r} is not a month (YYYY-MM)") from exc


class Command(BaseCommand):
    help = (
        "The ledger's month partitions (PostgreSQL): list them, create the coming months' (--ensure), "
        "export one month to Parquet (--export YYYY-MM), or apply the retention (--retain N)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--ensure", action="store_true", help="Create this month's and the next 2 months' partitions."
        )
        parser.add_argument("--export", metavar="YYYY-MM", help="Write that month to Parquet; drops nothing.")
        parser.add_argument(
            "--retain",
            type=int,
            metavar="MONTHS",
            help="Keep this month and MONTHS before it; export and drop older final months "
            "(default: SPENDPLANE_LEDGER_RETENTION_MONTHS, 0 = none).",
        )
        parser.add_argument("--archive-dir", default=settings.SPENDPLANE_LEDGER_ARCHIVE_DIR)
        parser.add_argument("--dry-run", action="store_true", help="With --retain: say what would go, change nothing.")

    def handle(self, *args, **options):
        if not ledger_is_partitioned():
            self.stdout.write("The ledger is one table on this database; only PostgreSQL partitions it by month.")
            return
        try:
            if options["ensure"]:
                created = ledger_partitions_ensure(progress=self.stdout.write)
                self.stdout.write(self.style.SUCCESS(f"{len(created)} partition(s) created."))
            if options["export"]:
                export = ledger_partition_export(
                    _month(options["export"]), options["archive_dir"], progress=self.stdout.write
                )
                self.stdout.write(
                    self.style.SUCCESS(f"Wrote {export.rows:,} rows (${export.cost_usd}) to {export.path}.")
                )
            retain = options["retain"] if options["retain"] is not None else settings.SPENDPLANE_LEDGER_RETENTION_MONTHS
            if options["retain"] is not None or (retain and not options["ensure"] and not options["export"]):
                steps = ledger_retention_apply(
                    months=retain,
                    archive_dir=options["archive_dir"],
                    dry_run=options["dry_run"],
                    progress=self.stdout.write,
                )
                dropped = sum(step.dropped for step in steps)
                self.stdout.write(
                    self.style.SUCCESS(f"{dropped} month(s) exported and dropped, {len(steps) - dropped} kept.")
                )
        except PartitionError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("Partitions:")
        for partition in ledger_partitions():
            label = f"{partition.month:%Y-%m}" if partition.month else "default"
            self.stdout.write(f"  {label:8} {partition.name:40} ~{partition.rows_estimate:,} rows")
        for archive in LedgerArchive.objects.filter(dropped_at__isnull=False)[:24]:
            self.stdout.write(f"  {archive.month:%Y-%m} archived: {archive.rows:,} rows in {archive.path}")
