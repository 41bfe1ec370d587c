"""Read queries of routing: which queues a person may work, which items they may claim."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet

from orchestration.models import Case
from routing.models import ItemState, Queue, ReviewerProfile, WorkItem


def workable_queues(reviewer: Any) -> QuerySet[Queue]:
    from guardian.shortcuts import get_objects_for_user

    return get_objects_for_user(
        reviewer, "routing.work_on_queue", klass=Queue, accept_global_perms=False
    )


def claimable_items(
    *, profile: ReviewerProfile, queues: Sequence[Queue] | Sequence[int], checker: bool = False
) -> QuerySet[WorkItem]:
    """Items of these queues the reviewer may take, in claim order: effective priority
    (class with the aging boost, `rank_at`), then id.

    Waiting items whose region and skills the reviewer has; never a case they
    submitted. A checker also gets four-eyes items awaiting a second verdict, except
    those they made.
    """
    states = [ItemState.QUEUED, ItemState.AWAITING_CHECKER] if checker else [ItemState.QUEUED]
    waiting = WorkItem.objects.filter(state__in=states, queue__in=queues)
    # A correlated NOT EXISTS, checked row by row in claim order (not a join over every
    # case), so the claim can walk the claim-order index and stop at the first fit.
    own_cases = Case.objects.filter(pk=OuterRef("case_id"), submitted_by=profile.user_id)
    items = waiting.filter(Q(region="") | Q(region__in=list(profile.regions))).filter(
        ~Exists(own_cases)
    )
    if checker:
        items = items.exclude(maker=profile.user_id)
    skills = sorted(profile.skills)
    if connection.vendor == "postgresql":
        items = items.filter(skills__contained_by=skills).exclude(
            excluded_reviewers__contains=[profile.user_id]
        )
    else:
        # SQLite has no JSON containment: one pass over the waiting items' lists leaves
        # out those needing a skill the person lacks or barring them.
        have = set(skills)
        barred = [
            pk
            for pk, needed, excluded in waiting.values_list("id", "skills", "excluded_reviewers")
            if not set(needed or []) <= have or profile.user_id in (excluded or [])
        ]
        items = items.exclude(id__in=barred)
    return items.order_by("rank_at", "id")
