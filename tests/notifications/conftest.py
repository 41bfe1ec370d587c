"""Helpers for notification tests: outbox events as the routing code writes them, and
notifications made directly for the page tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from notifications.models import Notification
from orchestration.models import OutboxEvent
from orchestration.services import outbox_publish


@pytest.fixture
def publish(db: None) -> Callable[..., OutboxEvent]:
    """Write an outbox event (no case) the way a service does, in its own transaction."""

    def publish(topic: str, **payload: Any) -> OutboxEvent:
        with transaction.atomic():
            return outbox_publish(topic=topic, case=None, payload=payload)

    return publish


@pytest.fixture
def notify(db: None) -> Callable[..., Notification]:
    """A notification for someone, as the consumer would have made it."""

    def notify(user: Any, title: str = "SLA at risk", **fields: Any) -> Notification:
        fields.setdefault("topic", "sla.at_risk")
        fields.setdefault("url", "/review/items/1/")
        return Notification.objects.create(user=user, title=title, event_id=uuid.uuid4(), **fields)

    return notify
