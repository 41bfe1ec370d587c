"""Every write of notifications: turning outbox events into notifications, emailing
them, marking them read, and the email preference."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.roles import Role
from config.errors import NotFound
from notifications import selectors
from notifications.models import EmailStatus, Notification, NotificationPreference
from orchestration.models import OutboxEvent

logger = logging.getLogger("arbiter.notifications")

# Titles for events that carry none. case.blocked is the orchestrator's own event and
# says nothing about whom to tell: the managers are.
DEFAULT_TITLES = {
    "case.blocked": "Case blocked by the threshold grid",
    "sla.at_risk": "SLA at risk",
    "sla.breached": "SLA breached",
    "item.escalated": "Work item escalated",
    "item.assigned": "Work item assigned to you",
    "item.reassigned": "Work item reassigned",
    "routing.unrouted": "Case could not be routed",
}
DEFAULT_ROLES = {"case.blocked": [Role.MANAGER.value]}

# The sweep re-sends emails whose task was lost (broker down) or ran out of retries,
# for a day; after that a stale email would confuse more than help.
EMAIL_SWEEP_GRACE = dt.timedelta(minutes=2)
EMAIL_SWEEP_WINDOW = dt.timedelta(days=1)


def _int_ids(raw: Any) -> set[int]:
    if not isinstance(raw, list):
        return set()
    ids = set()
    for value in raw:
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, str) and value.isdigit():
            ids.add(int(value))
    return ids


def _role_names(raw: Any) -> set[str]:
    if not isinstance(raw, list):
        return set()
    return {value for value in raw if isinstance(value, str) and value in Role.values}


def notification_link(payload: Mapping[str, Any]) -> str:
    """Where a notification points: the work item's workspace, else the case timeline."""
    item_id = payload.get("item_id")
    if isinstance(item_id, int | str) and not isinstance(item_id, bool) and str(item_id).isdigit():
        # The reviewer workspace (review app); a plain path, so this app works before it ships.
        return f"/review/items/{int(item_id)}/"
    case_id = payload.get("case_id")
    if case_id:
        return reverse("audit:case_timeline", args=[str(case_id)])
    return ""


def notifications_create_from_event(event: OutboxEvent) -> list[Notification]:
    """The outbox consumer: notify the people an event names; returns the new rows.

    The payload names them with `notify_user_ids` and/or `notify_roles`, and carries
    `title`, `body`, `item_id` and `case_id`. Delivered at least once: people already
    notified of this event are skipped (the unique (event, user) pair backs that up),
    so a re-delivery creates nothing and sends no email. Emails go out after commit.
    """
    payload: Mapping[str, Any] = event.payload if isinstance(event.payload, dict) else {}
    user_ids = _int_ids(payload.get("notify_user_ids"))
    roles = _role_names(payload.get("notify_roles", DEFAULT_ROLES.get(event.topic)))
    if not user_ids and not roles:
        return []
    recipients = selectors.users_to_notify(user_ids=user_ids, roles=roles)
    already = set(
        Notification.objects.filter(
            event_id=event.id, user_id__in=[u.pk for u in recipients]
        ).values_list("user_id", flat=True)
    )
    recipients = [u for u in recipients if u.pk not in already]
    if not recipients:
        return []
    opted_out = selectors.email_opted_out(user_ids=[u.pk for u in recipients])
    title = " ".join(
        str(payload.get("title") or DEFAULT_TITLES.get(event.topic, event.topic)).split()
    )
    common = {
        "event_id": event.id,
        "topic": event.topic,
        "title": title[:200],
        "body": str(payload.get("body") or ""),
        "url": notification_link(payload),
        "case_id": str(payload.get("case_id") or "")[:64],
        "created_at": timezone.now(),
    }
    # A concurrent delivery of the same event (not the relay's: it claims events with
    # SKIP LOCKED) makes this insert fail on the unique pair; the relay then retries.
    created = Notification.objects.bulk_create(
        [
            Notification(
                user=user,
                email_status=(
                    EmailStatus.PENDING
                    if user.email and user.pk not in opted_out
                    else EmailStatus.SKIPPED
                ),
                **common,
            )
            for user in recipients
        ]
    )
    to_email = [n.pk for n in created if n.email_status == EmailStatus.PENDING]
    if to_email:
        transaction.on_commit(partial(_enqueue_emails, to_email))
    return created


def _enqueue_emails(notification_ids: list[int]) -> None:
    from notifications.tasks import send_email

    for notification_id in notification_ids:
        try:
            send_email.delay(notification_id)
        except Exception:  # broker down, or (eager) the send failed: the sweep retries
            logger.warning(
                "notification %s: email not sent now; the sweep retries it",
                notification_id,
                exc_info=True,
            )


def _absolute(path: str) -> str:
    return f"{settings.ARBITER_SITE_URL}{path}" if settings.ARBITER_SITE_URL else path


@transaction.atomic
def notification_email_send(*, notification_id: int) -> bool:
    """Email one notification unless it went out already or is no longer wanted.

    True when it was sent now. The row stays locked while the mail goes out, so the
    task and the sweep never both send it; when sending raises, nothing changes and
    the email stays pending for a retry. The in-app notification is never affected.
    """
    notification = (
        Notification.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(pk=notification_id)
        .first()
    )
    if notification is None or notification.email_status != EmailStatus.PENDING:
        return False
    user = notification.user
    if not selectors.email_enabled_for(user):
        notification.email_status = EmailStatus.SKIPPED
        notification.save(update_fields=["email_status"])
        return False
    context = {
        "notification": notification,
        "name": user.get_full_name() or user.get_username(),
        "link": _absolute(notification.url or reverse("notifications:list")),
        "preferences_link": _absolute(reverse("notifications:list")),
    }
    send_mail(
        subject=f"[Arbiter] {notification.title}",
        message=render_to_string("notifications/email.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[user.email],
    )
    notification.email_status = EmailStatus.SENT
    notification.emailed_at = timezone.now()
    notification.save(update_fields=["email_status", "emailed_at"])
    return True


def notification_emails_send_due(*, now: dt.datetime | None = None) -> int:
    """The sweep: send emails still pending after their task should have sent them."""
    due = selectors.emails_due(
        now=now or timezone.now(), grace=EMAIL_SWEEP_GRACE, window=EMAIL_SWEEP_WINDOW
    )
    sent = 0
    for notification_id in due:
        try:
            sent += notification_email_send(notification_id=notification_id)
        except Exception:
            logger.warning("notification %s: email failed again", notification_id, exc_info=True)
    return sent


def notification_mark_read(*, notification: Notification, actor: AbstractBaseUser) -> Notification:
    """Mark one of the actor's notifications read; marking it again changes nothing."""
    if notification.user_id != actor.pk:
        # Someone else's notification does not exist as far as the actor can tell.
        raise NotFound("no such notification")
    now = timezone.now()
    # Compare-and-swap: the first mark wins, a second (another tab) keeps its time.
    if Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(read_at=now):
        notification.read_at = now
    elif notification.read_at is None:
        notification.refresh_from_db(fields=["read_at"])
    return notification


def notifications_mark_all_read(*, actor: AbstractBaseUser) -> int:
    """Mark every unread notification of the actor read; returns how many."""
    return Notification.objects.filter(user_id=actor.pk, read_at__isnull=True).update(
        read_at=timezone.now()
    )


def notification_preference_set(
    *, actor: AbstractBaseUser, email_enabled: bool
) -> NotificationPreference:
    """Turn the actor's notification emails on or off (pending ones follow suit)."""
    preference, _ = NotificationPreference.objects.update_or_create(
        user_id=actor.pk, defaults={"email_enabled": email_enabled}
    )
    return preference
