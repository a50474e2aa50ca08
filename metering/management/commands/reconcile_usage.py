from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from metering.reconciliation import reconcile_usage


class Command(BaseCommand):
    help = (
        "Import each provider's usage report and reconcile it against the ledger, per UTC day and model "
        "(the daily job's twin). Idempotent: a rerun changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--day", help="YYYY-MM-DD (UTC); default: yesterday.")
        parser.add_argument("--days", type=int, default=1, help="Reconcile this many days ending with --day.")
        parser.add_argument("--provider", help="Only this provider (its name, e.g. openai-default).")
        parser.add_argument(
            "--no-fetch", action="store_true", help="Reconcile the reports already imported; read no provider API."
        )

    def handle(self, *args, **options):
        try:
            last = date.fromisoformat(options["day"]) if options["day"] else timezone.now().date() - timedelta(days=1)
        except ValueError:
            raise CommandError("--day takes YYYY-MM-DD") from None
        if options["days"] < 1:
            raise CommandError("--days must be 1 or more")
        first = last - timedelta(days=options["days"] - 1)
        result = reconcile_usage(
            first, last, provider=options["provider"], fetch=not options["no_fetch"], progress=self.stdout.write
        )
        if not result.providers and not result.errors:
            self.stdout.write(
                "No provider has a usage report: set OPENAI_ADMIN_KEY / ANTHROPIC_ADMIN_KEY, a provider's admin key, "
                "or import a console export with import_provider_usage."
            )
        self.stdout.write(self.style.SUCCESS(f"Reconciled {first}..{last}: {result.summary()}."))
        if result.errors:
            failed = "; ".join(f"{name}: {error}" for name, error in result.errors.items())
            raise CommandError(f"Not reconciled (previous rows kept, the next run retries): {failed}")
