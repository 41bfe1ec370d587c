"""Read queries of notifications: whom to tell, what they have, what is unread."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet

from notifications.models import EmailStatus, Notification, NotificationPreference


def users_to_notify(*, user_ids: Collection[int], roles: Collection[str]) -> list[Any]:
    """Active people named by id or holding one of the roles, each once, by id."""
    if not user_ids and not roles:
        return []
    wanted = Q(pk__in=list(user_ids)) | Q(groups__name__in=list(roles))
    return list(get_user_model().objects.filter(wanted, is_active=True).distinct().order_by("pk"))


def email_opted_out(*, user_ids: Collection[int]) -> set[int]:
    """Which of these people turned notification emails off."""
    return set(
        NotificationPreference.objects.filter(
            user_id__in=list(user_ids), email_enabled=False
        ).values_list("user_id", flat=True)
    )


def email_enabled_for(user: AbstractBaseUser) -> bool:
    """Whether this person wants notification emails (the default) and has an address."""
    if not getattr(user, "email", ""):
        return False
    return not email_opted_out(user_ids=[user.pk])


def notifications_for(user: AbstractBaseUser) -> QuerySet[Notification]:
    """A person's notifications: unread first, then newest first."""
    return (
        Notification.objects.filter(user_id=user.pk)
        .annotate(unread=ExpressionWrapper(Q(read_at__isnull=True), output_field=BooleanField()))
        .order_by("-unread", "-created_at", "-id")
    )


def unread_count(user: AbstractBaseUser) -> int:
    """How many unread notifications the person has: one indexed COUNT."""
    return Notification.objects.filter(user_id=user.pk, read_at__isnull=True).count()


def emails_due(*, now: dt.datetime, grace: dt.timedelta, window: dt.timedelta) -> list[int]:
    """Notifications whose email is still pending after `grace` (its task was lost or
    failed), newer than `window`, oldest first."""
    return list(
        Notification.objects.filter(
            email_status=EmailStatus.PENDING,
            created_at__lte=now - grace,
            created_at__gte=now - window,
        )
        .order_by("created_at")
        .values_list("pk", flat=True)[:500]
    )
