"""Celery entry points of routing: thin, idempotent, they call services."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="routing.sla_sweep")
def sla_sweep() -> dict[str, int]:
    """Beat: mark at-risk and breached items, climb escalation ladders, hand back idle
    or orphaned work, push waiting items; each step runs at most once per item."""
    from routing.services import sla_sweep as sweep

    return sweep()
