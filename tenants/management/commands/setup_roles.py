from django.core.management.base import BaseCommand

from tenants.roles import ROLES, roles_setup


class Command(BaseCommand):
    help = "Create or refresh the 'finance' and 'support' staff groups and their permissions."

    def handle(self, *args, **options):
        roles_setup()
        for name, codes in ROLES.items():
            self.stdout.write(f"{name}: {len(codes)} permissions")
