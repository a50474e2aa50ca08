from django.core.management.base import BaseCommand

from metering.alerts import evaluate_alerts


class Command(BaseCommand):
    help = "Evaluate every alert now and queue delivery of the new ones."

    def handle(self, *args, **options):
        events = evaluate_alerts()
        for event in events:
            self.stdout.write(f"  {event.state:9} {event.kind:20} {event.message}")
        self.stdout.write(self.style.SUCCESS(f"{len(events)} new alert event(s)."))
