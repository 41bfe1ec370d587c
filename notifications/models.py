"""Notifications: one row per (outbox event, person), read in the app and sent by email."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class EmailStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    # No address, or the person turned email off (when created or when it was due).
    SKIPPED = "skipped", "Skipped"


class Notification(models.Model):
    """Something a person should know about, announced by one outbox event.

    The event is delivered at least once; the unique (event, user) pair makes every
    delivery after the first a no-op, so nobody is told (or emailed) twice.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    event_id = models.UUIDField()
    topic = models.CharField(max_length=64)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=500, blank=True)
    case_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    email_status = models.CharField(
        max_length=8, choices=EmailStatus.choices, default=EmailStatus.SKIPPED
    )
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "user"], name="notification_once_per_event_and_user"
            ),
        ]
        indexes = [
            # The bell's unread count, polled by every open page.
            models.Index(fields=["user", "read_at"], name="notification_user_read"),
            # The email sweep's backlog: small, so a partial index keeps it cheap.
            models.Index(
                fields=["created_at"],
                name="notification_email_pending",
                condition=Q(email_status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.topic} for {self.user_id}: {self.title}"

    @property
    def is_unread(self) -> bool:
        return self.read_at is None


class NotificationPreference(models.Model):
    """How a person wants to be told. Without a row, the defaults apply."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="notification_preference",
    )
    email_enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user_id}: email {'on' if self.email_enabled else 'off'}"
