from django.core.management.base import BaseCommand
from django.db import transaction

from metering import encryption
from metering.models import Provider


class Command(BaseCommand):
    help = "Re-encrypt every provider API key and admin key under the newest SPENDPLANE_ENCRYPTION_KEYS entry."

    @transaction.atomic
    def handle(self, *args, **options):
        rows = Provider.objects.select_for_update().values_list("pk", flat=True)
        count = 0
        for pk in rows:
            provider = Provider.objects.get(pk=pk)
            # Reading decrypts with any listed key; saving encrypts with the first.
            provider.save(update_fields=["api_key", "admin_api_key"])
            count += 1
        encryption._fernet.cache_clear()
        self.stdout.write(f"Re-encrypted {count} provider key(s).")
