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


@shared_task(name="orchestration.relay_outbox")
def relay_outbox() -> int:
    """After each commit that wrote events, and from beat: publish the outbox."""
    from orchestration.outbox import relay_outbox as relay

    published, _ = relay()
    return published
