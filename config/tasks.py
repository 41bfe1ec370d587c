"""Project-level tasks that belong to no single app."""

import logging

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

logger = logging.getLogger(__name__)

HEARTBEAT_CACHE_KEY = "arbiter:beat:last-heartbeat"


@shared_task(name="config.tasks.heartbeat")
def heartbeat() -> str:
    """Record that beat and a worker are alive; returns the time recorded (ISO 8601)."""
    now = timezone.now().isoformat()
    cache.set(HEARTBEAT_CACHE_KEY, now, timeout=None)
    logger.info("heartbeat %s", now)
    return now
