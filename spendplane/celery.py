import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spendplane.settings")

app = Celery("spendplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every periodic job lives here, each with a comment saying when it runs.
app.conf.beat_schedule = {
    # Every 10 minutes: drop budget reservations that expired over an hour ago.
    "sweep-reservations": {"task": "metering.tasks.sweep_reservations", "schedule": 600.0},
}
