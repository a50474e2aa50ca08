"""Alert delivery: signed webhooks and email."""

from __future__ import annotations

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F
from django.utils import timezone

from .alerts import alert_body, sign
from .models import AlertEvent, WebhookEndpoint


class DeliveryFailed(Exception):
    pass


def alert_deliver(*, event_id: int) -> str:
    """Send one alert to every active webhook and the alert mailbox. Raises DeliveryFailed if a
    webhook did not answer 2xx (the task retries; receivers dedupe on the event id)."""
    event = AlertEvent.objects.select_related("tenant").get(pk=event_id)
    AlertEvent.objects.filter(pk=event_id).update(delivery_attempts=F("delivery_attempts") + 1)
    body = alert_body(event)
    failures = []
    for endpoint in WebhookEndpoint.objects.filter(is_active=True):
        try:
            response = requests.post(
                endpoint.url,
                data=body,
                headers={"Content-Type": "application/json", "Spendplane-Signature": sign(endpoint.secret, body)},
                timeout=10,
            )
            if response.status_code >= 300:
                failures.append(f"{endpoint.url}: {response.status_code}")
        except requests.RequestException as exc:
            failures.append(f"{endpoint.url}: {exc.__class__.__name__}")
    if settings.SPENDPLANE_ALERT_EMAILS and event.delivery_attempts == 0:
        send_mail(
            subject=f"[Spendplane] {event.message}",
            message=body.decode(),
            from_email=None,
            recipient_list=settings.SPENDPLANE_ALERT_EMAILS,
            fail_silently=True,
        )
    if failures:
        raise DeliveryFailed("; ".join(failures))
    AlertEvent.objects.filter(pk=event_id).update(delivered_at=timezone.now())
    return "delivered"
