"""The outbox relay: publishes committed events to the broker, at least once.

Events go to the topic exchange `arbiter.events` with the topic as routing key, the
event id as message id (consumers dedupe on it), and the case's correlation id as
a header. A failed publish is retried with backoff; nothing is lost while the
broker is down, because the rows stay until a publish succeeds.

In-process consumers (notifications, ...) register with `register_consumer` and are
handed each claimed event before the broker sees it; see `relay_outbox`.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from kombu import Exchange, Producer

from orchestration.backoff import retry_delay
from orchestration.definition import RetryPolicy
from orchestration.intake import enqueue_deliveries, webhook_fan_out
from orchestration.models import OutboxEvent, ProcessedEvent

logger = logging.getLogger("arbiter.outbox")

EVENTS_EXCHANGE = Exchange("arbiter.events", type="topic", durable=True)
RELAY_BATCH = 200
RELAY_RETRY = RetryPolicy(max_attempts=1_000_000, base_delay=1.0, max_delay=300.0)
# Relay attempts an event is held back for a local consumer that keeps failing on it;
# then it goes out without that consumer (logged as an error). With RELAY_RETRY that
# bounds what a broken consumer costs the broker and webhooks: four backoffs of at
# most 1 + 2 + 4 + 8 s, each followed by the next relay run (beat sweeps every 10 s).
LOCAL_CONSUMER_ATTEMPTS = 5

Consumer = Callable[[OutboxEvent], object]
# name -> consumer; filled by the consuming apps' AppConfig.ready().
_CONSUMERS: dict[str, Consumer] = {}


def register_consumer(fn: Consumer, *, name: str = "") -> Consumer:
    """Hand `fn(event)` every event the relay claims, at least once.

    The call runs inside the relay's transaction, in its own savepoint, so what the
    consumer writes commits with the relay's bookkeeping; it does not wait for the
    broker. It may run again for the same event (a retry after a broker outage or after
    another consumer failed), so the consumer must be idempotent, for instance behind
    a unique constraint on the event id. Keep it to database work: anything slow or
    external belongs in a task enqueued with `transaction.on_commit`.
    """
    _CONSUMERS[name or f"{fn.__module__}.{fn.__qualname__}"] = fn
    return fn


def _consume_locally(events: list[OutboxEvent]) -> dict[uuid.UUID, str]:
    """Give each event to every local consumer; returns {event id: error} for the
    events to hold back and retry because a consumer raised."""
    held: dict[uuid.UUID, str] = {}
    for event in events:
        for name, consumer in list(_CONSUMERS.items()):
            try:
                # A savepoint: a failing consumer's writes roll back alone, and it
                # cannot break the relay's transaction for the others.
                with transaction.atomic():
                    consumer(event)
            except Exception as exc:
                last_try = event.attempts + 1 >= LOCAL_CONSUMER_ATTEMPTS
                logger.error(
                    "outbox consumer %s failed on %s %s (attempt %s)%s",
                    name,
                    event.topic,
                    event.id,
                    event.attempts + 1,
                    "; giving up on it for this event" if last_try else "; will retry",
                    exc_info=True,
                )
                if not last_try:
                    held.setdefault(event.id, f"consumer {name}: {type(exc).__name__}: {exc}")
    return held


def event_message(event: OutboxEvent) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "topic": event.topic,
        "occurred_at": event.created_at.isoformat(),
        "correlation_id": event.correlation_id,
        "data": event.payload,
    }


def relay_outbox(*, batch: int = RELAY_BATCH, now: dt.datetime | None = None) -> tuple[int, int]:
    """Publish due unpublished events; returns (published, failed).

    Rows are claimed with SKIP LOCKED (PostgreSQL), so relays running side by side
    share the backlog instead of sending the same event twice.
    """
    from config.celery import app

    now = now or timezone.now()
    with transaction.atomic():
        due = (
            OutboxEvent.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("case")
            .filter(published_at__isnull=True)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .order_by("created_at")[:batch]
        )
        events = list(due)
        if not events:
            return 0, 0
        # Local consumers go first and do not depend on the broker: they need only the
        # database we already hold, so a broker outage does not hold back in-app
        # notifications. An event a consumer failed on is held back like an unsent one
        # (published_at stays empty) so it is retried with backoff; the consumers that
        # did handle it see it again and must dedupe.
        errors = _consume_locally(events)
        try:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1)
                producer = Producer(conn.default_channel, exchange=EVENTS_EXCHANGE)
                EVENTS_EXCHANGE.declare(channel=conn.default_channel)
                for event in events:
                    if event.id in errors:
                        continue
                    producer.publish(
                        event_message(event),
                        routing_key=event.topic,
                        message_id=str(event.id),
                        headers={"correlation_id": event.correlation_id},
                        delivery_mode=2,
                        serializer="json",
                        retry=False,
                    )
                    event.published_at = timezone.now()
                    event.attempts += 1
                    event.save(update_fields=["published_at", "attempts"])
        except Exception as exc:
            for event in events:
                if event.published_at is None:
                    errors[event.id] = f"{type(exc).__name__}: {exc}"
            logger.warning(
                "outbox relay: broker publish failed, %s kept for retry: %s", len(errors), exc
            )
        # Choreography: webhooks hang off the published events, off the critical path;
        # those published before a broker failure part-way through get theirs too.
        deliveries = webhook_fan_out(e for e in events if e.published_at is not None)
        transaction.on_commit(lambda: enqueue_deliveries(deliveries))
        unsent = [e for e in events if e.published_at is None]
        for event in unsent:
            event.attempts += 1
            delay = retry_delay(RELAY_RETRY, min(event.attempts, 20))
            event.next_attempt_at = now + dt.timedelta(seconds=delay)
            event.last_error = errors.get(event.id, "")[:2000]
            event.save(update_fields=["attempts", "next_attempt_at", "last_error"])
    return len(events) - len(unsent), len(unsent)


def event_consume_once(*, consumer: str, event_id: str) -> bool:
    """Claim an event for one consumer; False when that consumer already handled it.

    Call inside the consumer's transaction, before its side effects: the claim and
    the effects then commit (or roll back) together.
    """
    _, created = ProcessedEvent.objects.get_or_create(consumer=consumer, event_id=event_id)
    return created
