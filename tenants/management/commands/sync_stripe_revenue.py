from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from tenants.stripe_revenue import StripeSyncError, stripe_client, stripe_revenue_sync


class Command(BaseCommand):
    help = "Import paid Stripe invoices and credit notes as revenue entries (idempotent; the hourly job's twin)."

    def add_arguments(self, parser):
        parser.add_argument("--since", help="YYYY-MM-DD: objects created since this UTC day (default: 35 days ago).")
        parser.add_argument("--dry-run", action="store_true", help="Report what would change, write nothing.")
        parser.add_argument("--api-base", help="Stripe's API address (default: STRIPE_API_BASE, else Stripe's).")

    def handle(self, *args, **options):
        since = None
        if options["since"]:
            try:
                since = datetime.fromisoformat(options["since"]).replace(tzinfo=UTC)
            except ValueError:
                raise CommandError("--since takes YYYY-MM-DD") from None
        try:
            result = stripe_revenue_sync(
                client=stripe_client(api_base=options["api_base"]),
                since=since,
                dry_run=options["dry_run"],
                progress=self.stdout.write,
            )
        except StripeSyncError as error:
            raise CommandError(f"Stripe sync failed, nothing was written: {error}") from None
        for problem in result.errors:
            self.stderr.write(f"skipped {problem}")
        for customer in sorted(result.unmatched_customers):
            self.stderr.write(f"no tenant for Stripe customer {customer} (set its billing customer id)")
        prefix = "Dry run, nothing written: " if options["dry_run"] else ""
        self.stdout.write(self.style.SUCCESS(f"{prefix}{result}"))
