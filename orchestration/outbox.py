"""The outbox relay: publishes committed events to the broker, at least once.

Events go to the topic exchange `arbiter.events` with the topic as routing key, the
event id as message id (consumers dedupe on it), and the case's correlation id as
a header. A failed publish is retried with backoff; nothing is lost while the
broker is down, because the rows stay until a publish succeeds.
"""

from __future__ import annotations

import datetime as dt
import logging
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
    published = failed = 0
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
        try:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1)
                producer = Producer(conn.default_channel, exchange=EVENTS_EXCHANGE)
                EVENTS_EXCHANGE.declare(channel=conn.default_channel)
                for event in events:
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
                    published += 1
            # Choreography: webhooks hang off the published events, off the critical path.
            deliveries = webhook_fan_out(e for e in events if e.published_at is not None)
            transaction.on_commit(lambda: enqueue_deliveries(deliveries))
        except Exception as exc:
            unsent = [e for e in events if e.published_at is None]
            for event in unsent:
                event.attempts += 1
                delay = retry_delay(RELAY_RETRY, min(event.attempts, 20))
                event.next_attempt_at = now + dt.timedelta(seconds=delay)
                event.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                event.save(update_fields=["attempts", "next_attempt_at", "last_error"])
            failed = len(unsent)
            logger.warning(
                "outbox relay: %s published, %s kept for retry: %s", published, failed, exc
            )
    return published, failed


def event_consume_once(*, consumer: str, event_id: str) -> bool:
    """Claim an event for one consumer; False when that consumer already handled it.

    Call inside the consumer's transaction, before its side effects: the claim and
    the effects then commit (or roll back) together.
    """
    _, created = ProcessedEvent.objects.get_or_create(consumer=consumer, event_id=event_id)
    return created
