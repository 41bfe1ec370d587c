"""Routing: where human work goes, and who takes it next."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from audit.context import ActorLike
from audit.models import AuditAction
from audit.services import record
from routing import selectors
from routing.models import ItemState, Queue, ReviewerProfile, RoutingRule, WorkItem

FALLBACK_QUEUE = "triage"


def _fallback_queue() -> Queue:
    queue, _ = Queue.objects.get_or_create(
        name=FALLBACK_QUEUE, defaults={"title": "Triage: work no routing rule matched"}
    )
    return queue


def queue_for(
    *, kind: str, region: str, skills: list[str], workflow_slug: str, hint: str = ""
) -> tuple[Queue, bool]:
    """The queue for a new item and whether a rule (or the step's hint) matched; with no
    match it is the triage queue, and the item is flagged, never dropped."""
    if hint:
        hinted = Queue.objects.filter(name=hint).first()
        if hinted is not None:
            return hinted, True
    for rule in RoutingRule.objects.filter(active=True).select_related("queue"):
        if rule.kind and rule.kind != kind:
            continue
        if rule.region and rule.region != region:
            continue
        if rule.skill and rule.skill not in skills:
            continue
        if rule.workflow_slug and rule.workflow_slug != workflow_slug:
            continue
        return rule.queue, True
    return _fallback_queue(), False


def work_item_enqueue(
    *, case: Any, step_run: Any, kind: str, routing: Mapping[str, Any], sla: float | None
) -> WorkItem:
    """Put a review (or QA) of `step_run` in its queue. Runs inside the gate's
    transaction, so a case never reaches review without its work item."""
    # The step's required skills and the case's own: the reviewer needs them all.
    skills = sorted({*(routing.get("skills") or []), *(case.skills or [])})
    region = str(routing.get("region") or case.region or "")
    queue, matched = queue_for(
        kind=kind,
        region=region,
        skills=skills,
        workflow_slug=case.workflow.slug,
        hint=str(routing.get("queue") or ""),
    )
    now = timezone.now()
    item = WorkItem.objects.create(
        case=case,
        step_run=step_run,
        kind=kind,
        queue=queue,
        priority=case.priority,
        region=region,
        skills=skills,
        enqueued_at=now,
        due_at=now + dt.timedelta(seconds=sla) if sla else None,
    )
    record(
        actor=None,
        action=AuditAction.ITEM_ENQUEUED,
        subject=item,
        case_id=case.pk,
        correlation_id=case.correlation_id,
        after={"queue": queue.name, "kind": kind, "priority": item.priority, "routed": matched},
        reason="" if matched else "no routing rule matched: sent to triage for a manager",
    )
    return item


def _profile_of(reviewer: Any) -> ReviewerProfile | None:
    # Read fresh: a capacity or shift change applies to the very next claim.
    return ReviewerProfile.objects.filter(user=reviewer).first()


@transaction.atomic
def work_item_claim_next(*, reviewer: Any) -> WorkItem | None:
    """Give the reviewer the most urgent, oldest item they may work; None when nothing
    eligible waits or they are at capacity.

    Never hands one item to two people: on PostgreSQL the candidate row is locked
    with SKIP LOCKED, so concurrent callers pass it by; SQLite runs one writer at a
    time (IMMEDIATE transactions), which serializes claims there.
    """
    profile = _profile_of(reviewer)
    if profile is None or not profile.on_shift:
        return None
    held = WorkItem.objects.filter(assignee=reviewer, state=ItemState.CLAIMED).count()
    if held >= profile.capacity:
        return None
    queues = list(selectors.workable_queues(reviewer))
    claimed = dict(
        WorkItem.objects.filter(state=ItemState.CLAIMED, queue__in=queues)
        .values_list("queue")
        .annotate(n=Count("id"))
    )
    # A queue at its WIP limit hands out nothing until someone finishes.
    open_queues = [q for q in queues if not q.wip_limit or claimed.get(q.pk, 0) < q.wip_limit]
    candidates = selectors.claimable_items(profile=profile, queues=open_queues)
    if connection.vendor == "postgresql":
        item = candidates.select_for_update(skip_locked=True, of=("self",)).first()
    else:
        item = candidates.first()
    if item is None:
        return None
    now = timezone.now()
    item.state = ItemState.CLAIMED
    item.assignee = reviewer
    item.claimed_at = now
    item.save(update_fields=["state", "assignee", "claimed_at", "updated_at"])
    record(
        actor=reviewer,
        action=AuditAction.ITEM_CLAIMED,
        subject=item,
        case_id=item.case_id,
        after={
            "queue": item.queue_id,
            "waited_seconds": round((now - item.enqueued_at).total_seconds(), 3),
        },
    )
    return item


def queue_grant(*, queue: Queue, user: Any, actor: ActorLike) -> None:
    """Let a person work a queue (guardian object permission), audited."""
    from guardian.shortcuts import assign_perm

    with transaction.atomic():
        assign_perm("routing.work_on_queue", user, queue)
        record(
            actor=actor,
            action=AuditAction.QUEUE_CHANGED,
            subject=queue,
            after={"granted": user.get_username()},
        )
