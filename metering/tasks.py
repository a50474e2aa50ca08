"""Celery tasks: thin wrappers over services, safe to retry and to run twice."""

from celery import shared_task

from .budgets import budget_sweep


@shared_task
def sweep_reservations() -> int:
    return budget_sweep()


@shared_task
def rollup_usage_task() -> dict:
    from .rollups import rollup_usage

    result = rollup_usage()
    return {"hours": result.hours, "days": result.days, "rows": result.hour_rows}


@shared_task
def margin_reports_task(day: str | None = None) -> int:
    """Recompute today's and this month's margin reports (or those of `day`, ISO). On the first
    two days of a month, yesterday's and last month's too: their last rows reach the rollups
    after midnight, so the reports computed before it were not final."""
    from datetime import date, timedelta

    from django.utils import timezone

    from .margins import margin_report_compute

    target = date.fromisoformat(day) if day else timezone.now().date()
    count = margin_report_compute(period="day", start=target)
    margin_report_compute(period="month", start=target.replace(day=1))
    if day is None:
        yesterday = target - timedelta(days=1)
        margin_report_compute(period="day", start=yesterday)
        if target.day <= 2:
            margin_report_compute(period="month", start=yesterday.replace(day=1))
    return count


@shared_task
def evaluate_alerts_task() -> int:
    from .alerts import evaluate_alerts

    return len(evaluate_alerts())


@shared_task(bind=True, max_retries=6, acks_late=True)
def deliver_alert(self, event_id: int) -> str:
    """POST the alert to every active webhook (signed) and email it; retried with backoff."""
    from .delivery import alert_deliver

    try:
        return alert_deliver(event_id=event_id)
    except Exception as exc:
        raise self.retry(exc=exc, countdown=min(2**self.request.retries * 5, 600)) from exc


@shared_task
def replay_ledger_spool_task() -> int:
    from .spool import spool_replay

    replayed, _left = spool_replay()
    return replayed


@shared_task(autoretry_for=(Exception,), retry_backoff=300, max_retries=3)
def reconcile_usage_task() -> dict:
    """The last SPENDPLANE_RECONCILE_DAYS days up to yesterday (providers publish usage late, so
    each day is reconciled again on the following runs); idempotent."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from .reconciliation import reconcile_usage

    last = timezone.now().date() - timedelta(days=1)
    result = reconcile_usage(last - timedelta(days=settings.SPENDPLANE_RECONCILE_DAYS - 1), last)
    if result.errors:  # the others are stored; retried with backoff, and again tomorrow
        raise RuntimeError(f"usage reports not read: {result.errors}")
    return result.counts()


@shared_task
def ledger_partitions_task() -> dict:
    """Create the coming months' ledger partitions and, with SPENDPLANE_LEDGER_RETENTION_MONTHS
    set, export and drop the months past it whose figures are final. A no-op on SQLite."""
    from django.conf import settings

    from .partitions import ledger_is_partitioned, ledger_partitions_ensure, ledger_retention_apply

    if not ledger_is_partitioned():
        return {"partitioned": False}
    created = ledger_partitions_ensure()
    steps = []
    if settings.SPENDPLANE_LEDGER_RETENTION_MONTHS:
        steps = ledger_retention_apply(
            months=settings.SPENDPLANE_LEDGER_RETENTION_MONTHS, archive_dir=settings.SPENDPLANE_LEDGER_ARCHIVE_DIR
        )
    return {
        "partitioned": True,
        "created": created,
        "dropped": [f"{s.month:%Y-%m}" for s in steps if s.dropped],
        "kept": {f"{s.month:%Y-%m}": s.detail for s in steps if not s.dropped},
    }


@shared_task
def analytics_ship_task() -> dict:
    """Send the ledger rows waiting in the outbox to ClickHouse (a no-op without CLICKHOUSE_URL);
    during an outage they stay and go on a later run."""
    from .analytics import analytics_enabled, analytics_ship

    if not analytics_enabled():
        return {"enabled": False}
    result = analytics_ship()
    return {"enabled": True, "shipped": result.shipped, "waiting": result.waiting}
