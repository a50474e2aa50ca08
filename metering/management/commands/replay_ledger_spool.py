from django.core.management.base import BaseCommand

from metering.spool import spool_dir, spool_replay, spooled_count


class Command(BaseCommand):
    help = (
        "Write ledger rows spooled during a database outage to the ledger (idempotent: a row already "
        "written is skipped). Exits non-zero while rows remain."
    )

    def handle(self, *args, **options):
        waiting = spooled_count()
        self.stdout.write(f"{waiting} spooled row(s) in {spool_dir()}")
        replayed, left = spool_replay(stop_on_error=False)
        self.stdout.write(f"Replayed {replayed}; {left} left.")
        if left:
            raise SystemExit(1)
