"""Writes of SLOs: saving and deleting them (the admin; audited with the reason given)
and evaluating their burn rates (beat), which opens and clears alerts and announces
each new one on the outbox as `slo.burn_rate` for the owner to be notified.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.roles import Role
from audit.context import Actor, ActorLike
from audit.models import AuditAction
from audit.services import audited_delete, audited_save
from metrics import slo as selectors
from metrics.models import SLO, SLOAlert
from orchestration.services import outbox_publish
from routing.dashboard import short_duration

logger = logging.getLogger("arbiter.metrics")
SLO_EVALUATOR = Actor.system("slo-evaluator")
BURN_RATE_TOPIC = "slo.burn_rate"


def slo_save(*, slo: SLO, actor: ActorLike, reason: str) -> SLO:
    """Create or change an SLO after validating it, with the before/after and the
    reason in the audit trail (as a policy change) and in its history."""
    saved: SLO = audited_save(
        obj=slo, actor=actor, reason=reason, action=AuditAction.POLICY_CHANGED
    )
    return saved


def slo_delete(*, slo: SLO, actor: ActorLike, reason: str) -> None:
    """Remove an SLO (and its alerts), keeping what it was in the audit trail."""
    audited_delete(obj=slo, actor=actor, reason=reason, action=AuditAction.POLICY_CHANGED)


# Evaluation -----------------------------------------------------------------------------


@dataclass
class Evaluation:
    raised: list[SLOAlert] = field(default_factory=list)
    cleared: list[SLOAlert] = field(default_factory=list)


def _rate(value: float | None) -> str:
    return "no events" if value is None else f"{value:.1f}x"


def _announce(
    slo: SLO, status: selectors.SLOStatus, pair: selectors.BurnWindow, now: dt.datetime
) -> SLOAlert:
    """Open an alert for a pair that started firing, and publish it for the owner."""
    long_rate, short_rate = pair.long_rate or 0.0, pair.short_rate or 0.0
    title = (
        f"SLO {slo.name}: {pair.label.lower()} alert, error budget burning at "
        f"{long_rate:.1f}x (threshold {pair.threshold:g}x)"
    )
    body = (
        f"Over the last {short_duration(pair.long_window)} the SLO's error rate was "
        f"{long_rate:.1f} times what its budget allows, and {short_rate:.1f} times over "
        f"the last {short_duration(pair.short_window)}. "
        f"{status.budget.left_percent:.1f} % of the {slo.window_days}-day error budget is left."
    )
    recipients: dict[str, Any] = (
        {"notify_user_ids": [slo.owner_id]}
        if slo.owner_id is not None
        else {"notify_roles": [Role.MANAGER.value]}  # nobody owns it: the managers do
    )
    event = outbox_publish(
        topic=BURN_RATE_TOPIC,
        case=None,
        payload={
            "slo_id": slo.pk,
            "slo": slo.name,
            "sli": slo.sli,
            "severity": pair.severity,
            "state": "firing",
            "threshold": pair.threshold,
            "long_window_seconds": int(pair.long_window.total_seconds()),
            "short_window_seconds": int(pair.short_window.total_seconds()),
            "burn_rate_long": round(long_rate, 4),
            "burn_rate_short": round(short_rate, 4),
            "objective": str(slo.objective),
            "attainment": status.attainment,
            "budget_left_percent": round(status.budget.left_percent, 4),
            "opened_at": now.isoformat(),
            "title": title,
            "body": body,
            **recipients,
        },
    )
    return SLOAlert.objects.create(
        slo=slo,
        severity=pair.severity,
        opened_at=now,
        threshold=pair.threshold,
        long_window=pair.long_window,
        short_window=pair.short_window,
        long_burn_rate=long_rate,
        short_burn_rate=short_rate,
        budget_used_percent=status.budget.used_percent,
        event_id=event.id,
    )


def _clear(alert: SLOAlert, now: dt.datetime) -> SLOAlert:
    alert.cleared_at = now
    alert.save(update_fields=["cleared_at"])
    return alert


@transaction.atomic
def slo_evaluate(*, slo_id: int, now: dt.datetime) -> Evaluation:
    """Compare the SLO's burn-rate pairs with their thresholds at `now`: open an alert
    (and announce it) for a pair that starts firing, clear the open one of a pair
    that stopped. A pair already alerting raises nothing again until it has cleared.
    An inactive SLO's open alerts are cleared."""
    # Locking the SLO serialises evaluators of one SLO (overlapping beat runs), so the
    # look for an open alert and the insert of a new one never interleave; the partial
    # unique constraint (one open alert per SLO and severity) is the backstop.
    slo = SLO.objects.select_for_update().filter(pk=slo_id).first()
    result = Evaluation()
    if slo is None:
        return result
    open_alerts = {a.severity: a for a in SLOAlert.objects.filter(slo=slo, cleared_at__isnull=True)}
    if not slo.active:
        result.cleared = [_clear(alert, now) for alert in open_alerts.values()]
        return result
    status = selectors.slo_status(slo, now=now)
    for pair in status.pairs:
        alert = open_alerts.get(pair.severity)
        if pair.firing and alert is None:
            result.raised.append(_announce(slo, status, pair, now))
        elif not pair.firing and alert is not None:
            result.cleared.append(_clear(alert, now))
    return result


def slo_evaluate_all(*, now: dt.datetime | None = None) -> dict[str, int]:
    """The beat job: evaluate every active SLO (and any with an alert still open), each
    in its own transaction, so one SLO's failure never holds up the others."""
    now = now or timezone.now()
    due = (
        SLO.objects.filter(
            Q(active=True) | Q(alerts__cleared_at__isnull=True, alerts__isnull=False)
        )
        .distinct()
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    summary = {"evaluated": 0, "raised": 0, "cleared": 0, "failed": 0}
    for slo_id in list(due):
        try:
            result = slo_evaluate(slo_id=slo_id, now=now)
        except Exception:  # logged with its traceback; the next minute tries again
            logger.exception("SLO %s could not be evaluated", slo_id)
            summary["failed"] += 1
            continue
        summary["evaluated"] += 1
        summary["raised"] += len(result.raised)
        summary["cleared"] += len(result.cleared)
    return summary
