"""Celery tasks: thin wrappers over services, safe to retry and to run twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task(autoretry_for=(Exception,), retry_backoff=60, max_retries=3)
def stripe_revenue_sync_task() -> str:
    """Paid invoices and credit notes of the last 35 days into revenue entries (idempotent)."""
    if not settings.STRIPE_API_KEY:
        return "skipped: STRIPE_API_KEY is not set"
    from .stripe_revenue import stripe_revenue_sync

    return str(stripe_revenue_sync())
