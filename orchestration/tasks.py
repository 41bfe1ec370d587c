"""Celery entry points of the orchestrator: thin, idempotent, they call services."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="orchestration.execute_step", acks_late=True)
def execute_step(step_run_id: int) -> None:
    """Run one attempt of a step run; a duplicate or late message does nothing."""
    from orchestration.services import step_run_execute

    step_run_execute(step_run_id)


@shared_task(name="orchestration.fire_timers")
def fire_timers() -> int:
    """Beat, every few seconds: fire due timers (retries, timeouts, waits, SLA hooks)."""
    from orchestration.services import timers_fire_due

    return timers_fire_due()


@shared_task(name="orchestration.deliver_webhook", acks_late=True)
def deliver_webhook(delivery_id: int) -> str:
    """One attempt at one webhook delivery (a no-op unless it is due)."""
    from orchestration.intake import webhook_deliver

    return webhook_deliver(delivery_id)


@shared_task(name="orchestration.deliver_due_webhooks")
def deliver_due_webhooks() -> int:
    """Beat: attempt every webhook delivery whose retry time has come."""
    from orchestration.intake import webhook_deliver, webhook_deliveries_due

    due = webhook_deliveries_due()
    for delivery_id in due:
        webhook_deliver(delivery_id)
    return len(due)


@shared_task(name="orchestration.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    """Beat: forget Idempotency-Keys older than 24 h."""
    from orchestration.intake import idempotency_purge_expired

    return idempotency_purge_expired()


@shared_task(name="orchestration.relay_outbox")
def relay_outbox() -> int:
    """After commits that wrote events (at most a few nudges a second per process), and
    from beat: publish the outbox. A full batch asks for the next run at once, so a
    backlog drains without waiting for more nudges."""
    from orchestration.outbox import RELAY_BATCH
    from orchestration.outbox import relay_outbox as relay

    published, failed = relay()
    if published and published + failed >= RELAY_BATCH:
        relay_outbox.delay()
    return published
