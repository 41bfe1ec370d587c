"""Building blocks for routing tests: queues, people and items without a full case run."""

from __future__ import annotations

import datetime as dt
from typing import Any

from audit.context import Actor
from orchestration import services
from routing.models import ReviewerProfile, WorkItem
from routing.services import queue_grant, work_item_claim_next, work_item_enqueue
from tests.orchestration.conftest import with_wait_and_review

system = Actor.system("test")


def load_flow() -> None:
    services.workflow_load(document=with_wait_and_review(), actor=system)


def reviewer(user, skills: dict[str, int] | None = None, regions=("eu",), capacity=5, **extra):
    ReviewerProfile.objects.update_or_create(
        user=user,
        defaults={
            "skills": skills or {},
            "regions": list(regions),
            "capacity": capacity,
            **extra,
        },
    )
    return user


def grant(queue, *users) -> None:
    for user in users:
        queue_grant(queue=queue, user=user, actor=system)


def enqueue(
    queue, *, priority: int = 3, region: str = "eu", skills=(), sla: float | None = None
) -> WorkItem:
    """A review item of a fresh case, routed to `queue` by the step's hint."""
    case = services.case_submit(
        workflow="wait-review",
        payload={"amount": "1"},
        actor=system,
        priority=priority,
        region=region,
        skills=list(skills),
    )
    run = case.step_runs.first()
    return work_item_enqueue(
        case=case, step_run=run, kind="review", routing={"queue": queue.name}, sla=sla
    )


def age(item: WorkItem, by: dt.timedelta) -> WorkItem:
    """Pretend the item entered its queue `by` earlier (rank and SLA times move with it)."""
    fields: dict[str, Any] = {"enqueued_at": item.enqueued_at - by, "rank_at": item.rank_at - by}
    for name in ("warn_at", "due_at", "escalate_at"):
        if getattr(item, name) is not None:
            fields[name] = getattr(item, name) - by
    WorkItem.objects.filter(pk=item.pk).update(**fields)
    item.refresh_from_db()
    return item


def claim(user) -> WorkItem:
    """The next item for `user`, which the test expects to exist."""
    item = work_item_claim_next(reviewer=user)
    assert item is not None, f"nothing to claim for {user}"
    return item
