import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spendplane.settings")

app = Celery("spendplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every periodic job lives here, each with a comment saying when it runs.
app.conf.beat_schedule = {
    # Every 10 minutes: drop budget reservations that expired over an hour ago.
    # Every minute: ledger rows spooled during a database outage by a process that has since died.
    "replay-ledger-spool": {"task": "metering.tasks.replay_ledger_spool_task", "schedule": 60.0},
    "sweep-reservations": {"task": "metering.tasks.sweep_reservations", "schedule": 600.0},
    # Every minute: roll newly recorded ledger rows into hour and day rollups.
    "rollup-usage": {"task": "metering.tasks.rollup_usage_task", "schedule": 60.0},
    # Every 5 minutes: today's and this month's margin reports.
    "margin-reports": {"task": "metering.tasks.margin_reports_task", "schedule": 300.0},
    # Every 5 minutes: budget thresholds, projections, spikes, dominance, loops.
    "evaluate-alerts": {"task": "metering.tasks.evaluate_alerts_task", "schedule": 300.0},
    # Daily at 06:00 UTC: provider usage reports against the ledger for the last few days.
    "reconcile-usage": {"task": "metering.tasks.reconcile_usage_task", "schedule": crontab(hour=6, minute=0)},
    # Daily at 00:20 UTC: the next months' ledger partitions; past the retention, final months
    # exported to Parquet and dropped whole (PostgreSQL only).
    "ledger-partitions": {"task": "metering.tasks.ledger_partitions_task", "schedule": crontab(hour=0, minute=20)},
    # Every 10 seconds: ledger rows waiting for ClickHouse (a no-op without CLICKHOUSE_URL).
    "ship-analytics": {"task": "metering.tasks.analytics_ship_task", "schedule": 10.0},
    # Every hour: paid Stripe invoices and credit notes of the last 35 days (a no-op without STRIPE_API_KEY).
    "stripe-revenue-sync": {"task": "tenants.tasks.stripe_revenue_sync_task", "schedule": 3600.0},
}
