"""The outbox relay against the configured broker: RabbitMQ in CI's real pass, the
file broker in the embedded one."""

import datetime as dt
import time
import uuid

import pytest
from django.db import transaction
from django.utils import timezone
from kombu import Queue

from audit.context import Actor
from config.celery import app as celery_app
from orchestration import services, tasks
from orchestration.models import OutboxEvent
from orchestration.outbox import EVENTS_EXCHANGE, event_consume_once, relay_outbox
from tests.orchestration.conftest import three_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def listener():
    """A private queue bound to every case.* event on the events exchange."""
    queue = Queue(
        f"test-events-{uuid.uuid4().hex[:8]}",
        EVENTS_EXCHANGE,
        routing_key="case.#",
        auto_delete=False,
    )
    with celery_app.connection_for_write() as conn:
        bound = queue(conn.default_channel)
        bound.declare()
        yield conn, bound
        bound.delete()


def _drain(bound, expected: int) -> list:
    messages: list = []
    for _ in range(100):
        message = bound.get(no_ack=True)
        if message is None:
            if len(messages) >= expected:
                break
            import time

            time.sleep(0.05)
            continue
        messages.append(message)
    return messages


def test_events_reach_the_topic_exchange_with_id_topic_and_correlation(listener, flow):
    _, bound = listener
    flow(three_tasks())
    case = services.case_submit(workflow="three-tasks", payload={}, actor=Actor.system("t"))
    event = OutboxEvent.objects.get(case=case, topic="case.submitted")
    assert relay_outbox() == (OutboxEvent.objects.filter(published_at__isnull=False).count(), 0)
    event.refresh_from_db()
    assert event.published_at is not None
    messages = _drain(bound, 1)
    bodies = [m.payload for m in messages]
    mine = [b for b in bodies if b["id"] == str(event.id)]
    assert mine, bodies
    assert mine[0]["topic"] == "case.submitted"
    assert mine[0]["correlation_id"] == str(case.correlation_id)
    assert mine[0]["data"]["case_id"] == str(case.pk)
    message = next(m for m in messages if m.payload["id"] == str(event.id))
    assert message.headers["correlation_id"] == str(case.correlation_id)
    assert relay_outbox() == (0, 0)  # published events are not sent again


@pytest.fixture(autouse=True)
def fresh_broker_pools():
    """A test that pointed the app at a dead broker leaves pooled connections (and a
    producer pool) bound to it; later tests must get new ones to the real broker."""
    yield
    celery_app._pool = None  # type: ignore[attr-defined]
    celery_app.amqp._producer_pool = None  # type: ignore[attr-defined]


def test_events_written_while_the_broker_is_down_go_out_when_it_is_back(flow, monkeypatch):
    flow(three_tasks())
    case = services.case_submit(workflow="three-tasks", payload={}, actor=Actor.system("t"))
    dead = "amqp://guest:guest@127.0.0.1:1//"
    real = celery_app.conf.broker_url
    monkeypatch.setattr(celery_app.conf, "broker_url", dead)
    monkeypatch.setenv("CELERY_BROKER_URL", dead)
    before = timezone.now()
    published, failed = relay_outbox()
    assert (published, failed) == (0, OutboxEvent.objects.count())
    kept = OutboxEvent.objects.get(case=case, topic="case.submitted")
    assert kept.published_at is None
    assert kept.attempts == 1
    assert "Error" in kept.last_error
    assert kept.next_attempt_at is not None
    assert kept.next_attempt_at >= before  # retried later, with backoff
    monkeypatch.undo()
    assert celery_app.conf.broker_url == real
    # Not before its retry time...
    assert relay_outbox(now=kept.next_attempt_at - dt.timedelta(seconds=0.5)) == (0, 0)
    # ...then it goes out.
    published, failed = relay_outbox(now=kept.next_attempt_at + dt.timedelta(seconds=1))
    assert failed == 0 and published >= 1
    kept.refresh_from_db()
    assert kept.published_at is not None


def test_a_consumer_handles_each_event_once():
    event_id = str(uuid.uuid4())
    assert event_consume_once(consumer="notifications", event_id=event_id) is True
    assert event_consume_once(consumer="notifications", event_id=event_id) is False
    assert event_consume_once(consumer="analytics", event_id=event_id) is True


def test_a_case_submitted_while_the_broker_is_down_is_kept_and_drained_later(
    flow, monkeypatch, django_capture_on_commit_callbacks
):
    from orchestration.models import Case, StepStatus, Timer, TimerKind
    from orchestration.services import timers_fire_due

    flow(three_tasks())
    dead = "amqp://guest:guest@127.0.0.1:1//"
    monkeypatch.setattr(celery_app.conf, "broker_url", dead)
    monkeypatch.setenv("CELERY_BROKER_URL", dead)
    celery_app.conf.task_always_eager = False
    try:
        with django_capture_on_commit_callbacks(execute=True):
            case = services.case_submit(workflow="three-tasks", payload={}, actor=Actor.system("t"))
    finally:
        celery_app.conf.task_always_eager = True
    # Accepted and kept: the case, its first step run and its events are all there.
    assert Case.objects.filter(pk=case.pk).exists()
    run = case.step_runs.get()
    assert run.status == StepStatus.PENDING
    assert OutboxEvent.objects.filter(case=case, published_at__isnull=True).exists()
    kick = Timer.objects.get(step_run=run, kind=TimerKind.RETRY)
    # The broker is back: the relay sends the events, the kick timer sends the step.
    monkeypatch.undo()
    assert relay_outbox()[0] >= 1
    assert not OutboxEvent.objects.filter(case=case, published_at__isnull=True).exists()
    with django_capture_on_commit_callbacks(execute=True):
        timers_fire_due(now=kick.due_at + dt.timedelta(seconds=1))
    run.refresh_from_db()
    assert run.status == StepStatus.SUCCEEDED


def test_a_transaction_nudges_the_relay_once_however_many_events_it_writes(
    flow, django_capture_on_commit_callbacks
):
    flow(three_tasks())
    with django_capture_on_commit_callbacks() as callbacks:
        case = services.case_submit(workflow="three-tasks", payload={}, actor=Actor.system("t"))
        services.case_cancel(case=case, actor=Actor.system("t"))  # more events, same block
    assert OutboxEvent.objects.filter(case=case).count() >= 2
    assert [c for c in callbacks if c is services._nudge_relay] == [services._nudge_relay]


def test_a_process_asks_for_a_relay_run_now_then_once_for_the_rest_of_the_window():
    # Times and window that binary floating point holds exactly.
    nudges = services.RelayNudges(window=0.25)
    assert nudges.countdown(10.0) == 0.0  # nothing asked yet: a run now
    nudges.sent(10.0, 0.0)
    # Inside the window: one run at its end, for this commit and the ones after it.
    assert nudges.countdown(10.125) == 0.125
    nudges.sent(10.125, 0.125)
    assert nudges.countdown(10.125) is None
    assert nudges.countdown(10.2) is None
    # That run may have started by now, so a commit now needs a run of its own, at once.
    assert nudges.countdown(10.25) == 0.0
    # A nudge the broker refused is not noted: the next commit asks again.
    assert nudges.countdown(10.375) == 0.0
    nudges.sent(10.375, 0.0)
    assert nudges.countdown(10.5) == 0.125


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_commits_sends_two_relay_messages_and_every_event_goes_out(
    monkeypatch,
):
    """Against the configured broker (RabbitMQ in CI's real pass, the file broker in
    the embedded one): ten transactions inside one window ask for two relay runs, one
    at once and one at the window's end, and those runs publish all ten events."""
    from celery.app.routes import Router
    from celery.app.routes import prepare as prepare_routes
    from celery.signals import before_task_publish
    from celery.worker.request import Request

    # A queue of this test's own: the broker is shared with the other tests (and, on a
    # developer's machine, with `make run`), and a message another run left on the
    # default queue would stand in front of these two. Only the relay task is routed
    # there, by a router of the test's own; the app's configuration, and the queue
    # table and exchange Celery caches from it, stay as they are.
    queue_name = f"arbiter-test-burst-{uuid.uuid4().hex[:12]}"
    queues = celery_app.amqp.queues
    router = Router(
        prepare_routes([{tasks.relay_outbox.name: {"queue": queue_name}}]),
        queues,
        create_missing=True,
        app=celery_app,
    )
    monkeypatch.setattr(celery_app.amqp, "router", router)
    monkeypatch.setattr(services, "_relay_nudges", services.RelayNudges(window=60.0))
    sent: list[dict] = []

    def note(sender=None, headers=None, routing_key=None, **kwargs):
        if sender == "orchestration.relay_outbox":
            sent.append({**headers, "routing_key": routing_key})

    before_task_publish.connect(note)
    celery_app.conf.task_always_eager = False
    try:
        for n in range(10):
            with transaction.atomic():  # a commit each: this test runs outside one
                services.outbox_publish(topic="test.burst", case=None, payload={"n": n})
    finally:
        celery_app.conf.task_always_eager = True
        before_task_publish.disconnect(note)
    assert [h["eta"] is None for h in sent] == [True, False], sent
    assert {h["routing_key"] for h in sent} == {queue_name}
    assert 59 < (dt.datetime.fromisoformat(sent[1]["eta"]) - timezone.now()).total_seconds() <= 60
    # Take the two messages off that queue and run them as a worker would (the
    # countdown's wait aside).
    ids = {h["id"] for h in sent}
    taken: list[str] = []
    with celery_app.connection_for_write() as conn:
        bound = queues[queue_name](conn.default_channel)
        try:
            deadline = time.monotonic() + 10
            while len(taken) < len(ids) and time.monotonic() < deadline:
                message = bound.get(no_ack=False)
                if message is None:
                    time.sleep(0.05)
                    continue
                assert message.headers.get("id") in ids, message.headers
                Request(message, app=celery_app, task=tasks.relay_outbox).execute()
                message.ack()
                taken.append(message.headers["id"])
            assert bound.get(no_ack=True) is None  # nothing else was sent there
        finally:
            bound.delete()
            # Celery declared an exchange of the queue's name for it (its autoexchange).
            if bound.exchange.name == queue_name:
                bound.exchange(conn.default_channel).delete()
            queues.pop(queue_name, None)  # a worker started later must not read it
    assert sorted(taken) == sorted(ids)
    assert not OutboxEvent.objects.filter(topic="test.burst", published_at__isnull=True).exists()
    assert OutboxEvent.objects.filter(topic="test.burst").count() == 10
    # Nothing of the detour is left for the tests after this one.
    monkeypatch.undo()
    default = celery_app.amqp.router.route({}, tasks.relay_outbox.name)["queue"]
    assert default.name == celery_app.conf.task_default_queue
    assert queue_name not in celery_app.amqp.queues


def test_a_relay_run_that_fills_its_batch_asks_for_the_next_one():
    from orchestration.outbox import RELAY_BATCH

    services.outbox_publish_many(
        [("test.backlog", None, {"n": n}) for n in range(2 * RELAY_BATCH + 50)]
    )
    # Eager, as in the test settings: the next run asked for runs inline.
    assert tasks.relay_outbox() == RELAY_BATCH
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()
    assert OutboxEvent.objects.filter(topic="test.backlog").count() == 2 * RELAY_BATCH + 50
