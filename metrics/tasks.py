"""Celery entry points of metrics: thin, idempotent, they call services."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="metrics.evaluate_slos")
def evaluate_slos() -> dict[str, int]:
    """Beat, every minute: compare each SLO's burn rates with its thresholds, opening
    and announcing alerts that start and clearing those that stopped."""
    from metrics.slo_services import slo_evaluate_all

    return slo_evaluate_all()
