"""Celery tasks: thin wrappers over services, safe to retry and to run twice."""

from celery import shared_task

from .budgets import budget_sweep


@shared_task
def sweep_reservations() -> int:
    return budget_sweep()
