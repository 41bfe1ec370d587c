"""Reads of the audit trail for the search page, timelines and evidence packs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from audit.models import AuditEvent
from audit.registry import TimelineEntry
from audit.services import chain_for
from audit.verification import verify

PAGE_SIZE = 50


@dataclass(frozen=True)
class EventFilters:
    case_id: str = ""
    actor: str = ""
    action: str = ""
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def event_search(
    *, filters: EventFilters, before_id: int | None = None
) -> tuple[list[AuditEvent], int | None]:
    """One page of events, newest first, and the id to continue from (None on the last page).

    Keyset pagination on the primary key: every page costs one indexed range scan,
    however deep, and no COUNT over a table of millions.
    """
    events: QuerySet[AuditEvent] = AuditEvent.objects.order_by("-id")
    if filters.case_id:
        events = events.filter(case_id=filters.case_id)
    if filters.actor:
        events = events.filter(actor_name=filters.actor)
    if filters.action:
        events = events.filter(action=filters.action)
    if filters.since:
        events = events.filter(occurred_at__gte=filters.since)
    if filters.until:
        events = events.filter(occurred_at__lt=filters.until)
    if before_id is not None:
        events = events.filter(id__lt=before_id)
    page = list(events[: PAGE_SIZE + 1])
    more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    return page, (page[-1].pk if more and page else None)


def case_events(case_id: str) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(chain=chain_for(case_id)).order_by("chain_seq")


def audit_timeline(case_id: str) -> Iterable[TimelineEntry]:
    for event in case_events(case_id):
        yield TimelineEntry(
            at=event.occurred_at,
            kind="audit",
            title=event.action,
            actor=event.actor_name,
            detail={
                "sequence": event.pk,
                "position": event.chain_seq,
                "object": f"{event.object_type} {event.object_id}".strip(),
                "reason": event.reason,
                "before": event.before,
                "after": event.after,
                "hash": event.hash,
            },
            order=event.chain_seq,
        )


def event_as_dict(event: AuditEvent) -> dict[str, Any]:
    return {
        "sequence": event.pk,
        "chain": event.chain,
        "position": event.chain_seq,
        "occurred_at": event.occurred_at.isoformat(),
        "actor": {"kind": event.actor_kind, "id": event.actor_id, "name": event.actor_name},
        "action": event.action,
        "object": {"type": event.object_type, "id": event.object_id},
        "case_id": event.case_id,
        "correlation_id": event.correlation_id,
        "trace_id": event.trace_id,
        "request_id": event.request_id,
        "client_ip": event.client_ip,
        "reason": event.reason,
        "before": event.before,
        "after": event.after,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def audit_chain_evidence(case_id: str) -> list[dict[str, Any]] | None:
    events = [event_as_dict(e) for e in case_events(case_id)]
    return events or None


def verification_evidence(case_id: str) -> dict[str, Any]:
    return verify(case_id=case_id).as_dict()
