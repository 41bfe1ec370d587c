"""notifications.services.notifications_create_from_event: outbox events become notifications
for the right people, once, however often the relay delivers them."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import transaction

from notifications.models import Notification
from notifications.services import notification_link, notifications_create_from_event
from orchestration import outbox
from orchestration.models import OutboxEvent
from orchestration.outbox import LOCAL_CONSUMER_ATTEMPTS, relay_outbox

pytestmark = pytest.mark.django_db


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(r.getMessage() for r in self.records)


@pytest.fixture
def outbox_log():
    """What the relay logs (the suite runs with pytest's logging plugin off)."""
    recorder = Recorder()
    logger = logging.getLogger("arbiter.outbox")
    logger.addHandler(recorder)
    yield recorder
    logger.removeHandler(recorder)


def recipients(event: OutboxEvent) -> set[str]:
    return set(
        Notification.objects.filter(event_id=event.id).values_list("user__username", flat=True)
    )


def test_an_event_notifies_the_people_it_names_by_id(publish, alice, bob, carol):
    event = publish(
        "item.assigned",
        notify_user_ids=[alice.pk, bob.pk],
        title="INV-42 is yours",
        body="Invoice approval, due Monday 12:00.",
        item_id=42,
        case_id="c-42",
    )
    notifications_create_from_event(event)
    assert recipients(event) == {"alice", "bob"}
    note = Notification.objects.get(event_id=event.id, user=alice)
    assert note.topic == "item.assigned"
    assert note.title == "INV-42 is yours"
    assert note.body == "Invoice approval, due Monday 12:00."
    assert note.url == "/review/items/42/"
    assert note.case_id == "c-42"
    assert note.read_at is None


def test_an_event_notifies_everyone_holding_a_named_role(publish, alice, maria, adam):
    event = publish("routing.unrouted", notify_roles=["manager"], title="No queue for c-7")
    notifications_create_from_event(event)
    assert recipients(event) == {"maria"}


def test_someone_named_by_id_and_by_role_is_told_once(publish, maria, alice):
    event = publish(
        "sla.breached", notify_user_ids=[maria.pk, alice.pk], notify_roles=["manager"], title="x"
    )
    created = notifications_create_from_event(event)
    assert len(created) == 2
    assert recipients(event) == {"maria", "alice"}


def test_a_blocked_case_tells_the_managers(publish, maria, alice):
    event = publish("case.blocked", case_id="c-9", outcome="")
    notifications_create_from_event(event)
    assert recipients(event) == {"maria"}
    note = Notification.objects.get(event_id=event.id)
    assert note.title == "Case blocked by the threshold grid"
    assert note.url == "/audit/cases/c-9/"
    assert note.case_id == "c-9"


def test_events_that_name_nobody_notify_nobody(publish, maria, alice):
    event = publish("case.submitted", case_id="c-1")
    assert notifications_create_from_event(event) == []
    assert not Notification.objects.exists()


def test_inactive_people_unknown_roles_and_bad_ids_are_skipped(publish, alice, bob):
    get_user_model().objects.filter(pk=bob.pk).update(is_active=False)
    event = publish(
        "sla.at_risk",
        notify_user_ids=[alice.pk, bob.pk, "nobody", None, True, 999_999],
        notify_roles=["wizard"],
        title="x",
    )
    notifications_create_from_event(event)
    assert recipients(event) == {"alice"}


def test_an_event_without_a_title_gets_one_from_its_topic(publish, alice):
    event = publish("sla.breached", notify_user_ids=[alice.pk], item_id="7")
    notifications_create_from_event(event)
    note = Notification.objects.get(event_id=event.id)
    assert note.title == "SLA breached"
    assert note.url == "/review/items/7/"


def test_links_go_to_the_item_else_the_case_timeline_else_nowhere():
    assert notification_link({"item_id": 5, "case_id": "c-1"}) == "/review/items/5/"
    assert notification_link({"case_id": "c-1"}) == "/audit/cases/c-1/"
    assert notification_link({"item_id": "../../admin", "case_id": "c-1"}) == "/audit/cases/c-1/"
    assert notification_link({}) == ""


def test_delivering_an_event_twice_notifies_and_emails_once(
    publish, alice, maria, django_capture_on_commit_callbacks
):
    event = publish("item.escalated", notify_user_ids=[alice.pk], notify_roles=["manager"])
    with django_capture_on_commit_callbacks(execute=True):
        first = notifications_create_from_event(event)
    with django_capture_on_commit_callbacks(execute=True):
        second = notifications_create_from_event(event)
    assert len(first) == 2
    assert second == []
    assert Notification.objects.filter(event_id=event.id).count() == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.test", "maria@example.test"]


def test_the_relay_hands_events_to_the_consumer(publish, alice, django_capture_on_commit_callbacks):
    event = publish("item.assigned", notify_user_ids=[alice.pk], title="Yours")
    with django_capture_on_commit_callbacks(execute=True):
        assert relay_outbox() == (1, 0)
    assert recipients(event) == {"alice"}
    assert [m.subject for m in mail.outbox] == ["[Arbiter] Yours"]


def test_relaying_an_event_again_notifies_and_emails_once(
    publish, alice, django_capture_on_commit_callbacks
):
    event = publish("item.assigned", notify_user_ids=[alice.pk], title="Yours")
    with django_capture_on_commit_callbacks(execute=True):
        relay_outbox()
    # At least once: the relay may hand over the same event again (a crash after the
    # publish, before its commit), so make it due once more.
    OutboxEvent.objects.filter(pk=event.pk).update(published_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        assert relay_outbox() == (1, 0)
    assert Notification.objects.filter(event_id=event.id).count() == 1
    assert len(mail.outbox) == 1


def test_people_are_notified_while_the_broker_is_down(publish, alice, monkeypatch):
    from config.celery import app as celery_app

    event = publish("sla.at_risk", notify_user_ids=[alice.pk], title="Hurry")
    dead = "amqp://guest:guest@127.0.0.1:1//"
    monkeypatch.setattr(celery_app.conf, "broker_url", dead)
    monkeypatch.setenv("CELERY_BROKER_URL", dead)
    assert relay_outbox() == (0, 1)
    assert recipients(event) == {"alice"}
    event.refresh_from_db()
    assert event.published_at is None  # the broker still gets it, later
    monkeypatch.undo()
    relay_outbox(now=event.next_attempt_at)
    event.refresh_from_db()
    assert event.published_at is not None
    assert Notification.objects.filter(event_id=event.id).count() == 1


def test_a_failing_consumer_does_not_stop_the_relay_or_the_other_consumers(
    publish, alice, monkeypatch, outbox_log
):
    broken = {"sla.breached"}

    def picky(event: OutboxEvent) -> None:
        if event.topic in broken:
            raise RuntimeError("picky cannot read this")

    monkeypatch.setitem(outbox._CONSUMERS, "picky", picky)
    held = publish("sla.breached", notify_user_ids=[alice.pk], title="Breached")
    fine = publish("item.assigned", notify_user_ids=[alice.pk], title="Yours")

    assert relay_outbox() == (1, 1)
    # The other consumer handled both events, and the event picky handled went out.
    assert recipients(held) == {"alice"} and recipients(fine) == {"alice"}
    fine.refresh_from_db()
    assert fine.published_at is not None
    # The one picky failed on is kept for a retry, with the reason, like an unsent one.
    held.refresh_from_db()
    assert held.published_at is None
    assert held.attempts == 1
    assert held.last_error.startswith("consumer picky: RuntimeError")
    assert held.next_attempt_at is not None
    assert "outbox consumer picky failed on sla.breached" in outbox_log.text()

    broken.clear()  # fixed: the retry goes through, and nobody is told twice
    assert relay_outbox(now=held.next_attempt_at) == (1, 0)
    held.refresh_from_db()
    assert held.published_at is not None
    assert Notification.objects.filter(event_id=held.id).count() == 1


def test_an_event_a_consumer_keeps_failing_on_goes_out_after_a_few_attempts(
    publish, alice, monkeypatch, outbox_log
):
    def broken(event: OutboxEvent) -> None:
        raise RuntimeError("always")

    monkeypatch.setitem(outbox._CONSUMERS, "broken", broken)
    event = publish("sla.breached", notify_user_ids=[alice.pk], title="Breached")
    OutboxEvent.objects.filter(pk=event.pk).update(attempts=LOCAL_CONSUMER_ATTEMPTS - 1)
    assert relay_outbox() == (1, 0)
    event.refresh_from_db()
    assert event.published_at is not None
    assert "giving up on it for this event" in outbox_log.text()
    assert recipients(event) == {"alice"}


def test_a_consumer_failure_rolls_back_only_its_own_writes(publish, alice, monkeypatch):
    def half_done(event: OutboxEvent) -> None:
        Notification.objects.create(user=alice, event_id=event.id, topic="x", title="half")
        raise RuntimeError("died half way")

    monkeypatch.setitem(outbox._CONSUMERS, "half_done", half_done)
    event = publish("case.submitted", case_id="c-1")
    relay_outbox()
    assert not Notification.objects.filter(title="half").exists()
    event.refresh_from_db()
    assert event.attempts == 1 and event.published_at is None  # kept for the retry


@pytest.mark.django_db(transaction=True)
def test_a_committed_event_reaches_the_bell_and_the_inbox(alice):
    from orchestration.services import outbox_publish

    with transaction.atomic():  # the relay is nudged on commit and runs eagerly in tests
        event = outbox_publish(
            topic="item.reassigned",
            case=None,
            payload={"notify_user_ids": [alice.pk], "title": "Moved to you", "item_id": 3},
        )
    event.refresh_from_db()
    assert event.published_at is not None
    note = Notification.objects.get(event_id=event.id)
    assert note.user_id == alice.pk
    assert [(m.subject, m.to) for m in mail.outbox] == [
        ("[Arbiter] Moved to you", ["alice@example.test"])
    ]
