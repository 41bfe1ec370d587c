"""Read queries of the reviewer workspace: the QA items a person holds and may take."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from routing.models import ItemKind, ItemState, ReviewerProfile, WorkItem
from routing.selectors import workable_queues

# A payload is shown for judging, not for download: past this many characters the
# summary is cut, so a huge document cannot make the page unusable.
SUMMARY_LIMIT = 20_000


def qa_items_held(*, reviewer: Any) -> QuerySet[WorkItem]:
    """The QA items this person has claimed and not finished, oldest claim first."""
    return (
        WorkItem.objects.filter(kind=ItemKind.QA, state=ItemState.CLAIMED, assignee=reviewer)
        .select_related("case__workflow", "queue", "step_run")
        .order_by("claimed_at", "id")
    )


def qa_items_waiting(*, reviewer: Any) -> int:
    """How many QA items wait in the queues this person may work."""
    return WorkItem.objects.filter(
        kind=ItemKind.QA, state=ItemState.QUEUED, queue__in=workable_queues(reviewer)
    ).count()


def qa_item_of(*, reviewer: Any, item_id: int) -> WorkItem | None:
    """The QA item `item_id` if this person is its assignee, else None, whether or not
    it exists (the caller answers 404 either way)."""
    return (
        WorkItem.objects.filter(pk=item_id, kind=ItemKind.QA, assignee=reviewer)
        .select_related("case__workflow", "queue", "step_run")
        .first()
    )


def why_nothing_claimed(*, reviewer: Any) -> str:
    """A sentence saying why a claim for this person came back empty."""
    profile = ReviewerProfile.objects.filter(user=reviewer).first()
    if profile is None:
        return "You have no reviewer profile yet, so no work can be handed to you. Ask a manager."
    if not profile.available(timezone.now()):
        return "You are off shift or marked absent, so no work is handed to you right now."
    held = WorkItem.objects.filter(assignee=reviewer, state=ItemState.CLAIMED).count()
    if held >= profile.capacity:
        return (
            f"You are at your capacity: you hold {held} item{'s' if held != 1 else ''} "
            f"(your limit is {profile.capacity}). Finish one before taking another."
        )
    if qa_items_waiting(reviewer=reviewer):
        return (
            "QA items are waiting, but none you may take now: they need a skill or region "
            "you do not have, or their queue is at its work-in-progress limit."
        )
    return "No QA item is waiting for you right now."


@dataclass(frozen=True)
class Summary:
    text: str
    truncated: bool


def json_summary(value: Any) -> Summary:
    """`value` as indented JSON for a <pre>, cut at SUMMARY_LIMIT characters."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    if len(text) <= SUMMARY_LIMIT:
        return Summary(text, truncated=False)
    return Summary(text[:SUMMARY_LIMIT], truncated=True)
