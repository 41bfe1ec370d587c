"""Celery entry points of notifications: thin and idempotent, they call services."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="notifications.send_email", bind=True, acks_late=True, max_retries=5)
def send_email(self: Any, notification_id: int) -> bool:
    """Email one notification; a duplicate or late message sends nothing twice."""
    from notifications.services import notification_email_send

    try:
        return notification_email_send(notification_id=notification_id)
    except OSError as exc:  # SMTP and socket errors; the sweep takes over after the last
        raise self.retry(exc=exc, countdown=min(30 * 2**self.request.retries, 900)) from exc


@shared_task(name="notifications.send_due_emails")
def send_due_emails() -> int:
    """Beat: send notification emails whose task was lost or gave up."""
    from notifications.services import notification_emails_send_due

    return notification_emails_send_due()
