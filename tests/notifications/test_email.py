"""Notification emails: through Django's email backend (locmem in tests), only to people
with an address who want them, and never at the cost of the in-app notification."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone

from notifications.models import EmailStatus, Notification
from notifications.services import (
    notification_email_send,
    notification_emails_send_due,
    notification_preference_set,
    notifications_create_from_event,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def deliver(publish, django_capture_on_commit_callbacks):
    """Publish an event and hand it to the consumer, running what it leaves for commit."""

    def deliver(topic: str = "item.assigned", **payload):
        event = publish(topic, **payload)
        with django_capture_on_commit_callbacks(execute=True):
            notifications_create_from_event(event)
        return event

    return deliver


@pytest.fixture
def smtp_down(settings):
    settings.EMAIL_BACKEND = "tests.notifications.test_email.RefusingBackend"


class RefusingBackend:
    def __init__(self, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("SMTP server refused the connection")


def test_the_email_says_what_happened_and_links_to_it(deliver, alice, settings):
    settings.DEFAULT_FROM_EMAIL = "Arbiter <arbiter@example.test>"
    settings.ARBITER_SITE_URL = "https://arbiter.example.test"
    deliver(notify_user_ids=[alice.pk], title="INV-42 is yours", body="Due Monday.", item_id=42)
    [message] = mail.outbox
    assert message.subject == "[Arbiter] INV-42 is yours"
    assert message.to == ["alice@example.test"]
    assert message.from_email == "Arbiter <arbiter@example.test>"
    assert "Hello Alice," in message.body
    assert "Due Monday." in message.body
    assert "https://arbiter.example.test/review/items/42/" in message.body
    assert "https://arbiter.example.test/notifications/" in message.body  # where to opt out
    note = Notification.objects.get(user=alice)
    assert note.email_status == EmailStatus.SENT
    assert note.emailed_at is not None


def test_people_without_an_address_get_no_email(deliver, alice, bob):
    get_user_model().objects.filter(pk=bob.pk).update(email="")
    deliver(notify_user_ids=[alice.pk, bob.pk], title="x")
    assert [m.to for m in mail.outbox] == [["alice@example.test"]]
    assert Notification.objects.get(user=bob).email_status == EmailStatus.SKIPPED


def test_people_who_turned_email_off_get_none(deliver, alice, bob):
    notification_preference_set(actor=bob, email_enabled=False)
    deliver(notify_user_ids=[alice.pk, bob.pk], title="x")
    assert [m.to for m in mail.outbox] == [["alice@example.test"]]
    assert Notification.objects.filter(user=bob).exists()  # still told in the app


def test_turning_email_off_stops_an_email_not_yet_sent(publish, alice):
    event = publish("item.assigned", notify_user_ids=[alice.pk], title="x")
    [note] = notifications_create_from_event(event)  # its email waits for the commit
    notification_preference_set(actor=alice, email_enabled=False)
    assert notification_email_send(notification_id=note.pk) is False
    note.refresh_from_db()
    assert note.email_status == EmailStatus.SKIPPED
    assert mail.outbox == []


def test_a_failed_email_keeps_the_notification_and_is_sent_later(
    deliver, alice, smtp_down, settings
):
    deliver(notify_user_ids=[alice.pk], title="Breached")
    note = Notification.objects.get(user=alice)
    assert note.read_at is None
    assert note.email_status == EmailStatus.PENDING
    assert mail.outbox == []

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert notification_emails_send_due(now=timezone.now()) == 0  # the task may still send it
    assert notification_emails_send_due(now=timezone.now() + dt.timedelta(minutes=3)) == 1
    assert [m.subject for m in mail.outbox] == ["[Arbiter] Breached"]
    assert notification_emails_send_due(now=timezone.now() + dt.timedelta(minutes=4)) == 0


def test_an_email_is_sent_once_however_often_it_is_asked_for(deliver, alice):
    deliver(notify_user_ids=[alice.pk], title="x")
    note = Notification.objects.get(user=alice)
    assert notification_email_send(notification_id=note.pk) is False
    assert len(mail.outbox) == 1


def test_stale_emails_are_not_swept_up(deliver, alice, smtp_down, settings):
    deliver(notify_user_ids=[alice.pk], title="x")
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert notification_emails_send_due(now=timezone.now() + dt.timedelta(days=2)) == 0
    assert mail.outbox == []
