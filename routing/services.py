"""Routing: where human work goes, who takes it next, and what happens when it waits.

Writes follow one recipe: lock the rows, check the state, save, audit in the same
transaction, and announce with outbox events (notifications hang off those).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import BigIntegerField, Count, F, Func, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit.context import Actor, ActorLike
from audit.models import AuditAction
from audit.services import (
    audited_delete,
    audited_save,
    case_chain_head_sql,
    chain_head_seen,
    reason_required,
    record,
    record_many,
)
from config.errors import ApplicationError, Conflict
from config.sqlcache import cached_sql, first_row, raw_rows
from routing import selectors
from routing.calendar import business_add
from routing.instrumentation import timed_claim
from routing.models import (
    OPEN_STATES,
    ItemState,
    Queue,
    ReviewerProfile,
    SLAPolicy,
    Strategy,
    WorkItem,
)

logger = logging.getLogger("arbiter.routing")
FALLBACK_QUEUE = "triage"
ROUTER = Actor.system("router")
SLA_SWEEPER = Actor.system("sla-sweep")


def _fallback_queue() -> Queue:
    queue, _ = Queue.objects.get_or_create(
        name=FALLBACK_QUEUE, defaults={"title": "Triage: work no routing rule matched"}
    )
    return queue


def queue_for(
    *,
    kind: str,
    region: str,
    skills: list[str],
    workflow_slug: str,
    priority: int = 3,
    hint: str = "",
) -> tuple[Queue, bool]:
    """The queue for a new item and whether a rule (or the step's hint) matched; with no
    match it is the triage queue, and the item is flagged, never dropped.

    A rule matches when its own conditions hold and its queue takes the item: the
    item's region among the queue's regions, the queue's required skills among the
    item's, its priority among the queue's classes (empty lists take anything).
    """
    if hint:
        hinted = first_row(Queue, ("queue-named", hint), lambda: Queue.objects.filter(name=hint))
        if hinted is not None:
            return hinted, True
    for queue in _rule_queues():
        rule = vars(queue)  # the rule's conditions came with its queue, as annotations
        if rule["rule_kind"] and rule["rule_kind"] != kind:
            continue
        if rule["rule_region"] and rule["rule_region"] != region:
            continue
        if rule["rule_skill"] and rule["rule_skill"] not in skills:
            continue
        if rule["rule_workflow_slug"] and rule["rule_workflow_slug"] != workflow_slug:
            continue
        if not queue_takes(queue, region=region, skills=skills, priority=priority):
            continue
        return queue, True
    return _fallback_queue(), False


def _rule_queues() -> list[Queue]:
    """The queue of each active routing rule, in the rules' order, carrying the rule's
    conditions as `rule_kind`, `rule_region`, `rule_skill` and `rule_workflow_slug`.
    Read afresh on every call (an admin's edit counts at once); only the SQL is kept
    (intake routes every case, and building this join cost more than running it)."""
    return raw_rows(
        Queue,
        ("routing-rule-queues",),
        lambda: (
            Queue.objects.filter(rules__active=True)
            .annotate(
                rule_kind=F("rules__kind"),
                rule_region=F("rules__region"),
                rule_skill=F("rules__skill"),
                rule_workflow_slug=F("rules__workflow_slug"),
            )
            .order_by("rules__order", "rules__id")
        ),
    )


def queue_takes(queue: Queue, *, region: str, skills: list[str], priority: int) -> bool:
    if queue.regions and region not in queue.regions:
        return False
    if not set(queue.required_skills or []) <= set(skills):
        return False
    return not queue.priority_classes or priority in queue.priority_classes


def rank_for(queue: Queue, priority: int, at: dt.datetime) -> dt.datetime:
    """Claim order key: one aging step of handicap per priority class, so class 1 goes
    first and an item of class 3 that waited two steps ranks with a fresh class 1."""
    return at + queue.aging_step * priority


def _sla_policy(queue: Queue) -> SLAPolicy | None:
    if queue.sla_policy_id is None:
        return None
    return SLAPolicy.objects.select_related("calendar").get(pk=queue.sla_policy_id)


def sla_times(
    policy: SLAPolicy | None, start: dt.datetime, fallback_seconds: float | None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(warn_at, due_at) for an item entering at `start`: the queue's SLA policy in
    business time, else the step's own `sla` seconds around the clock, else none."""
    if policy is not None:
        due = business_add(policy.calendar, start, policy.target)
        warn = business_add(policy.calendar, start, policy.target * policy.warn_at_percent / 100)
        return warn, due
    if fallback_seconds:
        target = dt.timedelta(seconds=fallback_seconds)
        return start + target * 0.75, start + target
    return None, None


def _rung_at(item: WorkItem, policy: SLAPolicy | None, rung: int) -> dt.datetime | None:
    """When escalation rung `rung` (2 reassign, 3 move) is due for this item."""
    if item.due_at is None or rung > 3:
        return None
    if policy is not None:
        percent = policy.reassign_after_percent if rung == 2 else policy.move_after_percent
        return business_add(policy.calendar, item.enqueued_at, policy.target * percent / 100)
    target = item.due_at - item.enqueued_at
    return item.enqueued_at + target * (1.25 if rung == 2 else 1.5)


def _announce(
    topic: str,
    item: WorkItem,
    *,
    title: str,
    users: Iterable[Any] = (),
    roles: Sequence[str] = (),
    **extra: Any,
) -> None:
    """An outbox event about an item; notifications turn `notify_*` into messages."""
    from orchestration.services import outbox_publish

    outbox_publish(
        topic=topic,
        case=item.case,
        payload={
            "item_id": item.pk,
            "queue": item.queue.name,
            "title": title,
            "notify_user_ids": sorted({user.pk for user in users if user is not None}),
            "notify_roles": list(roles),
            **extra,
        },
    )


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
        priority=case.priority,
        hint=str(routing.get("queue") or ""),
    )
    now = timezone.now()
    warn_at, due_at = sla_times(_sla_policy(queue), now, sla)
    item = WorkItem.objects.create(
        case=case,
        step_run=step_run,
        kind=kind,
        queue=queue,
        priority=case.priority,
        region=region,
        skills=skills,
        enqueued_at=now,
        rank_at=rank_for(queue, case.priority, now),
        warn_at=warn_at,
        due_at=due_at,
        escalate_at=due_at,
        flag="" if matched else "no routing rule matched",
    )
    record(
        actor=None,
        action=AuditAction.ITEM_ENQUEUED,
        subject=item,
        case_id=case.pk,
        correlation_id=case.correlation_id,
        after={
            "queue": queue.name,
            "kind": kind,
            "priority": item.priority,
            "routed": matched,
            "due_at": due_at.isoformat() if due_at else None,
        },
        reason="" if matched else "no routing rule matched: sent to triage for a manager",
    )
    if not matched:
        _announce(
            "routing.unrouted",
            item,
            title=f"No queue takes a {kind} of case {case.pk}: it waits in triage",
            roles=["manager"],
        )
    if queue.strategy != Strategy.PULL:
        queue_push(queue=queue, now=now)
    return item


def _profile_of(reviewer: Any) -> ReviewerProfile | None:
    # Read fresh: a capacity or shift change applies to the very next claim.
    return ReviewerProfile.objects.filter(user=reviewer).first()


def _held(user_ids: Iterable[int]) -> dict[int, int]:
    """Open items each person holds now (their load against capacity)."""
    return dict(
        WorkItem.objects.filter(assignee__in=list(user_ids), state=ItemState.CLAIMED)
        .values_list("assignee")
        .annotate(n=Count("id"))
    )


def _queue_wip(queues: Iterable[Queue]) -> dict[int, int]:
    return dict(
        WorkItem.objects.filter(state=ItemState.CLAIMED, queue__in=list(queues))
        .values_list("queue")
        .annotate(n=Count("id"))
    )


def _assign(item: WorkItem, user: Any, *, now: dt.datetime) -> None:
    item.state = ItemState.CLAIMED
    item.assignee = user
    item.claimed_at = now
    item.last_activity_at = now
    item.save(update_fields=["state", "assignee", "claimed_at", "last_activity_at", "updated_at"])


def _claimant(reviewer: Any) -> tuple[ReviewerProfile | None, list[int], list[int]]:
    """The person's profile, annotated with how many items they hold (`held`), the ids
    of the queues granted to them (django-guardian, read fresh every time), and of
    those among them with a WIP limit. On PostgreSQL one statement; elsewhere two. Only
    the SQL is kept (config.sqlcache), per person, superuser or not, and the queue's
    content type (a flushed test database can renumber those)."""
    key = (reviewer.pk, reviewer.is_superuser, ContentType.objects.get_for_model(Queue).pk)
    if connection.vendor == "postgresql":
        from django.contrib.postgres.expressions import ArraySubquery
        from django.contrib.postgres.fields import ArrayField

        def build() -> QuerySet[ReviewerProfile]:
            # Each granted queue as an [id, WIP limit] pair, so guardian's subqueries
            # appear once in the statement: planning them is most of the read's cost.
            pair = Func(
                F("pk"),
                F("wip_limit"),
                template="ARRAY[%(expressions)s]",
                output_field=ArrayField(BigIntegerField()),
            )
            granted = selectors.workable_queues(reviewer).order_by("pk").values(pair=pair)
            return _profile_and_held(reviewer).annotate(granted=ArraySubquery(granted))

        profile = first_row(ReviewerProfile, ("claimant", *key), build)
        if profile is None:
            return None, [], []
        queues: Sequence[Sequence[int]] = profile.granted  # type: ignore[attr-defined]
    else:
        profile = first_row(ReviewerProfile, ("profile", *key), lambda: _profile_and_held(reviewer))
        if profile is None:
            return None, [], []
        queues = list(
            selectors.workable_queues(reviewer).order_by("pk").values_list("pk", "wip_limit")
        )
    return profile, [pk for pk, _ in queues], [pk for pk, limit in queues if limit]


def _full_queues(queue_ids: Sequence[int]) -> list[int]:
    """Those of these queues whose claimed items have reached their WIP limit."""
    return list(
        Queue.objects.filter(pk__in=list(queue_ids), wip_limit__gt=0)
        .annotate(claimed=_claimed_count("queue", "pk"))
        .filter(claimed__gte=F("wip_limit"))
        .values_list("pk", flat=True)
    )


def _claimed_count(field: str, outer: str) -> Coalesce:
    """How many items are claimed now whose `field` is the outer row's `outer` (0 for
    none), as a subquery of the outer query."""
    counted = (
        WorkItem.objects.filter(**{field: OuterRef(outer)}, state=ItemState.CLAIMED)
        .order_by()
        .values(field)
        .annotate(n=Count("id"))
        .values("n")
    )
    return Coalesce(Subquery(counted), 0)


def _profile_and_held(reviewer: Any) -> QuerySet[ReviewerProfile]:
    return ReviewerProfile.objects.filter(user=reviewer).annotate(
        held=_claimed_count("assignee", "user_id")
    )


@timed_claim  # claim latency for /metrics, commit included
@transaction.atomic
def work_item_claim_next(*, reviewer: Any, kinds: Sequence[str] | None = None) -> WorkItem | None:
    """Give the reviewer the item of highest effective priority they may work; None
    when nothing eligible waits, they are off shift or absent, or at capacity.

    Effective priority is the priority class with an aging boost (`rank_at`), so a
    low class never starves. Never hands one item to two people: on PostgreSQL the
    candidate row is locked with SKIP LOCKED, so concurrent callers pass it by;
    SQLite runs one writer at a time (IMMEDIATE transactions), which serializes
    claims there.
    """
    now = timezone.now()
    profile, queue_ids, limited = _claimant(reviewer)
    if profile is None or not profile.available(now):
        return None
    if profile.held >= profile.capacity:  # type: ignore[attr-defined]  # annotated
        return None
    if limited:
        # A queue at its WIP limit hands out nothing until someone finishes. Counting
        # is kept out of the read above: its estimated cost, which grows with the
        # table, once pushed that read past PostgreSQL's JIT threshold (25 ms a claim).
        full = set(_full_queues(limited))
        queue_ids = [pk for pk in queue_ids if pk not in full]
    if not queue_ids:
        return None
    from accounts.roles import Role, roles_of

    checker = Role.CHECKER in roles_of(reviewer)

    def candidates() -> QuerySet[WorkItem]:
        found = selectors.claimable_items(profile=profile, queues=queue_ids, checker=checker)
        return found.filter(kind__in=list(kinds)) if kinds else found

    if connection.vendor == "postgresql":
        shape = (
            profile.user_id,
            tuple(queue_ids),
            tuple(sorted(profile.regions or [])),
            tuple(sorted(profile.skills or {})),
            checker,
            tuple(kinds or ()),
        )
        item = _claim_in_one_statement(shape, candidates, reviewer, now)
    else:
        item = candidates().first()
        if item is not None:
            _assign(item, reviewer, now=now)
    if item is None:
        return None
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


# The candidate query's SQL is a pure function of everything it is built from (the
# person, the queues they may take from now, their regions and skills, checker or not,
# kinds), so the ORM builds it once per shape (config.sqlcache); building it was about
# half of a claim's Python. The read of the profile, load and queues (`_claimant`) is
# kept per person the same way (a claim went from 10 to 3.4 ms of CPU). On PostgreSQL a
# claim is five round trips: BEGIN, that read, the UPDATE (which also reads the head of
# the case's audit chain), the audit INSERT, COMMIT; six when a queue has a WIP limit.


def _claim_sql(
    shape: tuple[Any, ...], candidates: Callable[[], QuerySet[WorkItem]]
) -> tuple[str, tuple[Any, ...]]:
    def build() -> tuple[str, tuple[Any, ...]]:
        first = candidates().values("id")[:1].select_for_update(skip_locked=True, of=("self",))
        inner, params = first.query.sql_with_params()
        table = connection.ops.quote_name(WorkItem._meta.db_table)
        sql = (
            f"UPDATE {table} SET state = %s, assignee_id = %s, claimed_at = %s, "  # noqa: S608
            f"last_activity_at = %s, updated_at = %s WHERE id = ({inner}) "
            f"RETURNING *, {case_chain_head_sql(f'{table}.case_id')}"
        )
        return sql, tuple(params)

    return cached_sql(("claim", *shape), build)


def _claim_in_one_statement(
    shape: tuple[Any, ...],
    candidates: Callable[[], QuerySet[WorkItem]],
    reviewer: Any,
    now: dt.datetime,
) -> WorkItem | None:
    """Lock the first candidate (SKIP LOCKED) and mark it claimed in one UPDATE ...
    RETURNING: one round trip, the row lock held for the shortest time. The claim is
    recorded in the audit trail by the caller (not as a history row of the item)."""
    sql, params = _claim_sql(shape, candidates)
    rows = list(WorkItem.objects.raw(sql, [ItemState.CLAIMED, reviewer.pk, now, now, now, *params]))
    if not rows:
        return None
    item = rows[0]
    # The claim's audit event then goes in with one round trip, not two.
    chain_head_seen(item.case_id, item.audit_head_seq, item.audit_head_hash)  # type: ignore[attr-defined]
    return item


# Push strategies ------------------------------------------------------------------------


def _eligible_people(queue: Queue, now: dt.datetime) -> list[ReviewerProfile]:
    """Profiles of people who may work the queue and can take work now."""
    from guardian.shortcuts import get_users_with_perms

    users = get_users_with_perms(queue, only_with_perms_in=["work_on_queue"], with_group_users=True)
    profiles = ReviewerProfile.objects.filter(user__in=users, user__is_active=True).select_related(
        "user"
    )
    return [profile for profile in profiles.order_by("user_id") if profile.available(now)]


def fits(profile: ReviewerProfile, item: WorkItem) -> bool:
    """The person has the item's region and every skill it needs."""
    if item.region and item.region not in (profile.regions or []):
        return False
    return set(item.skills or []) <= set(profile.skills or {})


def may_take(user: Any, item: WorkItem) -> bool:
    """Four-eyes and conflict of interest: nobody reviews a case they submitted, and
    only a checker who is not its maker takes an item awaiting its second verdict."""
    from accounts.roles import Role, roles_of

    if item.case.submitted_by_id is not None and item.case.submitted_by_id == user.pk:
        return False
    if user.pk in (item.excluded_reviewers or []):
        return False
    if item.maker_id is not None:
        return item.maker_id != user.pk and Role.CHECKER in roles_of(user)
    return True


def _skill_level(profile: ReviewerProfile, item: WorkItem) -> int:
    levels = [int(profile.skills.get(skill, 0)) for skill in item.skills or []]
    return min(levels) if levels else 0


def _pick(
    queue: Queue, item: WorkItem, people: list[ReviewerProfile], load: dict[int, int]
) -> ReviewerProfile | None:
    room = [
        p
        for p in people
        if fits(p, item) and load.get(p.user_id, 0) < p.capacity and may_take(p.user, item)
    ]
    if not room:
        return None
    if queue.strategy == Strategy.ROUND_ROBIN:
        after = [p for p in room if queue.last_assignee_id and p.user_id > queue.last_assignee_id]
        return (after or room)[0]
    if queue.strategy == Strategy.LEAST_LOADED:
        return min(room, key=lambda p: (load.get(p.user_id, 0), p.user_id))
    # skill_match: the best level in the item's weakest skill, ties by load
    return min(room, key=lambda p: (-_skill_level(p, item), load.get(p.user_id, 0), p.user_id))


@transaction.atomic
def queue_push(*, queue: Queue, now: dt.datetime | None = None, limit: int = 200) -> int:
    """Hand waiting items of a push queue to people by its strategy; returns how many.

    Items wait when nobody eligible has room, and go out on a later push (a
    decision that frees capacity, a shift starting, the periodic sweep). The queue
    row is locked, so two pushes never race over the round-robin turn.
    """
    if queue.strategy == Strategy.PULL:
        return 0
    now = now or timezone.now()
    queue = Queue.objects.select_for_update().get(pk=queue.pk)
    people = _eligible_people(queue, now)
    if not people:
        return 0
    load = _held(p.user_id for p in people)
    wip = _queue_wip([queue]).get(queue.pk, 0)
    waiting = WorkItem.objects.filter(queue=queue, state=ItemState.QUEUED).order_by("rank_at", "id")
    if connection.vendor == "postgresql":
        waiting = waiting.select_for_update(skip_locked=True, of=("self",))
    pushed = 0
    for item in waiting.select_related("case", "queue")[:limit]:
        if queue.wip_limit and wip >= queue.wip_limit:
            break
        person = _pick(queue, item, people, load)
        if person is None:
            continue
        _assign(item, person.user, now=now)
        load[person.user_id] = load.get(person.user_id, 0) + 1
        wip += 1
        pushed += 1
        queue.last_assignee_id = person.user_id
        record(
            actor=ROUTER,
            action=AuditAction.ITEM_CLAIMED,
            subject=item,
            case_id=item.case_id,
            after={"queue": queue.name, "pushed_to": person.user.get_username()},
            reason=f"pushed by the {queue.strategy} strategy",
        )
        _announce(
            "item.assigned",
            item,
            title=f"New {item.get_kind_display().lower()} for you in {queue.title}",
            users=[person.user],
        )
    if pushed:
        queue.save(update_fields=["last_assignee"])
    return pushed


def capacity_freed(*, user: Any) -> None:
    """Someone finished or handed back work: push queues they work may now give them
    (and others) the next waiting item."""
    for queue in selectors.workable_queues(user).exclude(strategy=Strategy.PULL):
        queue_push(queue=queue)


@transaction.atomic
def work_item_complete(*, item: WorkItem, actor: Any) -> WorkItem:
    """The holder has decided the item: done, and their capacity goes to the next one."""
    locked = WorkItem.objects.select_for_update().get(pk=item.pk)
    if locked.state != ItemState.CLAIMED or locked.assignee_id != getattr(actor, "pk", None):
        raise Conflict("this item is no longer yours to decide: it was reassigned or decided")
    locked.state = ItemState.DONE
    locked.decided_at = timezone.now()
    locked.save(update_fields=["state", "decided_at", "updated_at"])
    transaction.on_commit(partial(capacity_freed, user=actor))
    return locked


def work_items_withdraw(*, step_run: Any, reason: str) -> int:
    """The review is over without these items (decided elsewhere, case cancelled):
    open items of the step run are cancelled, and their holders freed."""
    now = timezone.now()
    items = list(
        WorkItem.objects.select_for_update(of=("self",))
        .select_related("case")
        .filter(step_run=step_run, state__in=OPEN_STATES)
    )
    for item in items:
        holder = item.assignee
        item.state = ItemState.CANCELLED
        item.decided_at = now
        item.save(update_fields=["state", "decided_at", "updated_at"])
        record(
            actor=None,
            action=AuditAction.ITEM_RELEASED,
            subject=item,
            case_id=item.case_id,
            correlation_id=item.case.correlation_id,
            after={"state": ItemState.CANCELLED},
            reason=reason,
        )
        if holder is not None:
            transaction.on_commit(partial(capacity_freed, user=holder))
    return len(items)


def work_item_touch(*, item: WorkItem) -> None:
    """The holder is working on it (opened, edited): the idle clock starts again."""
    WorkItem.objects.filter(pk=item.pk, state=ItemState.CLAIMED).update(
        last_activity_at=timezone.now()
    )


# Reassignment and moves -----------------------------------------------------------------


def _hand_over(
    item: WorkItem, to_user: Any | None, *, actor: ActorLike, reason: str, now: dt.datetime
) -> None:
    """Give a locked open item to `to_user`, or back to its queue with None."""
    before = {"assignee": item.assignee.get_username() if item.assignee else None}
    if to_user is None:
        # A four-eyes item whose maker has decided waits for a checker again.
        item.state = ItemState.AWAITING_CHECKER if item.maker_id else ItemState.QUEUED
        item.assignee = None
        item.claimed_at = None
        item.last_activity_at = None
    else:
        item.state = ItemState.CLAIMED
        item.assignee = to_user
        item.claimed_at = now
        item.last_activity_at = now
    item.reassignment_count += 1
    item.save(
        update_fields=[
            "state",
            "assignee",
            "claimed_at",
            "last_activity_at",
            "reassignment_count",
            "updated_at",
        ]
    )
    record(
        actor=actor,
        action=AuditAction.ITEM_REASSIGNED,
        subject=item,
        case_id=item.case_id,
        before=before,
        after={"assignee": to_user.get_username() if to_user else None, "queue": item.queue.name},
        reason=reason,
    )
    if to_user is not None:
        _announce(
            "item.reassigned",
            item,
            title=f"An item in {item.queue.title} was handed to you",
            users=[to_user],
            reason=reason,
        )


_require_reason = reason_required


def _lock_open_items(item_ids: Sequence[int]) -> list[WorkItem]:
    if not item_ids:
        raise ApplicationError("select at least one item", field="item_ids")
    items = list(
        WorkItem.objects.select_for_update(of=("self",))
        .select_related("queue", "case", "assignee")
        .filter(pk__in=list(item_ids))
        .order_by("id")
    )
    missing = sorted(set(item_ids) - {item.pk for item in items})
    if missing:
        raise ApplicationError(f"no such items: {missing}", field="item_ids")
    closed = [item.pk for item in items if item.state not in OPEN_STATES]
    if closed:
        raise Conflict(f"items already decided or cancelled: {closed}")
    return items


@transaction.atomic
def work_items_reassign(
    *, item_ids: Sequence[int], to_user: Any | None, actor: Any, reason: str
) -> int:
    """A manager hands items to a person (who must be able to work them) or back to
    their queues (to_user None); all or nothing. Returns how many moved."""
    reason = _require_reason(reason)
    items = _lock_open_items(item_ids)
    now = timezone.now()
    if to_user is not None:
        profile = _profile_of(to_user)
        workable = set(selectors.workable_queues(to_user).values_list("pk", flat=True))
        unfit = [
            item.pk
            for item in items
            if profile is None
            or item.queue_id not in workable
            or not fits(profile, item)
            or not may_take(to_user, item)
        ]
        if unfit:
            raise ApplicationError(
                f"{to_user.get_username()} may not work items {unfit} "
                "(queue permission, skills or region)",
                field="to_user",
            )
    for item in items:
        _hand_over(item, to_user, actor=actor, reason=reason, now=now)
    return len(items)


@transaction.atomic
def work_items_move(
    *,
    item_ids: Sequence[int],
    queue: Queue,
    actor: Any,
    reason: str,
    raise_priority: bool = False,
) -> int:
    """Move items to another queue (a manager's bulk move, or an escalation, which
    raises each item one priority class); they wait there unclaimed."""
    reason = _require_reason(reason)
    items = _lock_open_items(item_ids)
    now = timezone.now()
    for item in items:
        priority = max(1, item.priority - 1) if raise_priority else item.priority
        _move(item, queue, actor=actor, reason=reason, priority=priority, now=now)
    if queue.strategy != Strategy.PULL:
        queue_push(queue=queue, now=now)
    return len(items)


def _move(
    item: WorkItem, queue: Queue, *, actor: ActorLike, reason: str, priority: int, now: dt.datetime
) -> None:
    before = {"queue": item.queue.name, "priority": item.priority, "assignee": item.assignee_id}
    item.queue = queue
    item.priority = priority
    item.state = ItemState.AWAITING_CHECKER if item.maker_id else ItemState.QUEUED
    item.assignee = None
    item.claimed_at = None
    item.last_activity_at = None
    item.rank_at = rank_for(queue, priority, item.enqueued_at)
    item.reassignment_count += 1
    item.flag = ""
    item.save(
        update_fields=[
            "queue",
            "priority",
            "state",
            "assignee",
            "claimed_at",
            "last_activity_at",
            "rank_at",
            "reassignment_count",
            "flag",
            "updated_at",
        ]
    )
    record(
        actor=actor,
        action=AuditAction.ITEM_REASSIGNED,
        subject=item,
        case_id=item.case_id,
        before=before,
        after={"queue": queue.name, "priority": priority, "assignee": None},
        reason=reason,
    )


# The SLA sweep --------------------------------------------------------------------------


def _due_items(field: str, now: dt.datetime, extra: Q, limit: int) -> list[WorkItem]:
    """Open items whose `field` time has come, locked; a concurrent sweep skips them."""
    due = (
        WorkItem.objects.filter(extra, state__in=OPEN_STATES, **{f"{field}__lte": now})
        .select_related("queue__owner", "case", "assignee")
        .order_by(field, "id")
    )
    if connection.vendor == "postgresql":
        due = due.select_for_update(skip_locked=True, of=("self",))
    return list(due[:limit])


def _warn(item: WorkItem, now: dt.datetime) -> None:
    # A plain UPDATE: the sweep's marks are in the audit trail, not item history rows.
    item.warned_at = now
    WorkItem.objects.filter(pk=item.pk).update(warned_at=now, updated_at=now)
    record(
        actor=SLA_SWEEPER,
        action=AuditAction.SLA_WARNED,
        subject=item,
        case_id=item.case_id,
        after={"due_at": item.due_at.isoformat() if item.due_at else None},
    )
    _announce(
        "sla.at_risk",
        item,
        title=f"At risk: an item in {item.queue.title} is due soon",
        users=[item.assignee, item.queue.owner],
        due_at=item.due_at.isoformat() if item.due_at else None,
    )


def _breach_all(
    items: Sequence[WorkItem], now: dt.datetime, policies: dict[int, SLAPolicy | None]
) -> None:
    """Rung 1 for a batch of locked items: breached now, the next rung's time set, one
    audit event and one `sla.breached` announcement each; on PostgreSQL one UPDATE,
    one audit round trip plus one INSERT, and one outbox INSERT for the whole batch."""
    from orchestration.services import outbox_publish_many

    if not items:
        return
    for item in items:
        if item.queue_id not in policies:
            policies[item.queue_id] = _sla_policy(item.queue)
        item.breached_at = now
        item.escalation_level = 1
        item.escalate_at = _rung_at(item, policies[item.queue_id], 2)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE routing_workitem AS w SET breached_at = %s, escalation_level = 1, "
                "escalate_at = v.at, updated_at = %s "
                "FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, at) WHERE w.id = v.id",
                [now, now, [item.pk for item in items], [item.escalate_at for item in items]],
            )
    else:
        for item in items:
            item.updated_at = now
        WorkItem.objects.bulk_update(
            items, ["breached_at", "escalation_level", "escalate_at", "updated_at"]
        )
    record_many(
        [
            {
                "actor": SLA_SWEEPER,
                "action": AuditAction.SLA_BREACHED,
                "subject": item,
                "case_id": item.case_id,
                "after": {
                    "rung": 1,
                    "due_at": item.due_at.isoformat() if item.due_at else None,
                },
            }
            for item in items
        ]
    )
    outbox_publish_many(
        [
            (
                "sla.breached",
                item.case,
                {
                    "item_id": item.pk,
                    "queue": item.queue.name,
                    "title": f"SLA breached: an item in {item.queue.title} is overdue",
                    "notify_user_ids": sorted(
                        {pk for pk in (item.assignee_id, item.queue.owner_id) if pk is not None}
                    ),
                    "notify_roles": [],
                    "rung": 1,
                },
            )
            for item in items
        ]
    )


def _escalate(
    item: WorkItem, now: dt.datetime, policies: dict[int, SLAPolicy | None] | None = None
) -> None:
    """Climb one rung of the ladder: 1 breach (notify assignee and owner), 2 reassign,
    3 move to the escalation queue with raised priority. The level is compared and
    set on the locked row, so no rung is ever applied twice. `policies` memoises SLA
    policies by queue for one sweep."""
    rung = item.escalation_level + 1
    if policies is None:
        policies = {}
    if item.queue_id not in policies:
        policies[item.queue_id] = _sla_policy(item.queue)
    policy = policies[item.queue_id]
    if rung == 1:
        item.breached_at = now
        record(
            actor=SLA_SWEEPER,
            action=AuditAction.SLA_BREACHED,
            subject=item,
            case_id=item.case_id,
            after={"rung": 1, "due_at": item.due_at.isoformat() if item.due_at else None},
        )
        _announce(
            "sla.breached",
            item,
            title=f"SLA breached: an item in {item.queue.title} is overdue",
            users=[item.assignee, item.queue.owner],
            rung=1,
        )
    elif rung == 2:
        reason = "SLA breached: escalation rung 2, reassigned"
        if item.state in (ItemState.CLAIMED, ItemState.QUEUED):
            holder = item.assignee
            people = [p for p in _eligible_people(item.queue, now) if p.user_id != item.assignee_id]
            load = _held(p.user_id for p in people)
            choice = _pick(Queue(strategy=Strategy.LEAST_LOADED), item, people, load)
            if choice is not None or holder is not None:
                to_user = choice.user if choice else None
                _hand_over(item, to_user, actor=SLA_SWEEPER, reason=reason, now=now)
            if holder is not None:
                transaction.on_commit(partial(capacity_freed, user=holder))
        record(
            actor=SLA_SWEEPER,
            action=AuditAction.ITEM_ESCALATED,
            subject=item,
            case_id=item.case_id,
            after={"rung": 2, "assignee": item.assignee.get_username() if item.assignee else None},
            reason=reason,
        )
    else:
        target = item.queue.escalation_queue
        raised = max(1, item.priority - 1)
        if target is not None:
            _move(
                item,
                target,
                actor=SLA_SWEEPER,
                reason="SLA breached: escalation rung 3, moved with raised priority",
                priority=raised,
                now=now,
            )
        else:
            item.flag = "SLA breached and the queue has no escalation queue"
        record(
            actor=SLA_SWEEPER,
            action=AuditAction.ITEM_ESCALATED,
            subject=item,
            case_id=item.case_id,
            after={"rung": 3, "queue": item.queue.name, "priority": item.priority},
        )
        _announce(
            "item.escalated",
            item,
            title=f"Escalated: an overdue item now in {item.queue.title}",
            users=[item.queue.owner],
            roles=["manager"] if target is None else [],
            rung=3,
        )
    item.escalation_level = rung
    item.escalate_at = _rung_at(item, policy, rung + 1)
    WorkItem.objects.filter(pk=item.pk).update(
        breached_at=item.breached_at,
        escalation_level=rung,
        escalate_at=item.escalate_at,
        flag=item.flag,
        updated_at=now,
    )


def _idle_and_absent(now: dt.datetime, limit: int) -> int:
    """Claimed items nobody is working on go back to the queue, or to the delegate of
    a holder who is absent; returns how many moved."""
    moved = 0
    for policy in SLAPolicy.objects.filter(idle_limit__isnull=False):
        if policy.idle_limit is None:
            continue
        # A snoozed item is parked on purpose until its follow-up time.
        stale = _due_items(
            "last_activity_at",
            now - policy.idle_limit,
            Q(state=ItemState.CLAIMED, queue__sla_policy=policy)
            & (Q(snoozed_until__isnull=True) | Q(snoozed_until__lte=now)),
            limit,
        )
        for item in stale:
            holder = item.assignee
            _hand_over(item, None, actor=SLA_SWEEPER, reason="idle past the limit", now=now)
            if holder is not None:
                transaction.on_commit(partial(capacity_freed, user=holder))
            moved += 1
    holders = WorkItem.objects.filter(state=ItemState.CLAIMED).values("assignee")
    for profile in ReviewerProfile.objects.filter(user__in=holders).select_related("delegate"):
        if profile.available(now):
            continue
        delegate = _usable_delegate(profile, now)
        items = _due_items(
            "claimed_at", now, Q(state=ItemState.CLAIMED, assignee_id=profile.user_id), limit
        )
        why = "absent" if profile.is_absent(now) else "off shift"
        for item in items:
            to_user = delegate if delegate is not None and _delegate_fits(delegate, item) else None
            _hand_over(
                item,
                to_user,
                actor=SLA_SWEEPER,
                reason=f"holder {profile.user.get_username()} is {why}"
                + (f": handed to delegate {to_user.get_username()}" if to_user else ""),
                now=now,
            )
            moved += 1
    return moved


def _usable_delegate(profile: ReviewerProfile, now: dt.datetime) -> Any | None:
    if profile.delegate_id is None:
        return None
    delegate_profile = _profile_of(profile.delegate)
    if delegate_profile is None or not delegate_profile.available(now):
        return None
    return profile.delegate


def _delegate_fits(delegate: Any, item: WorkItem) -> bool:
    profile = _profile_of(delegate)
    if profile is None or not fits(profile, item) or not may_take(delegate, item):
        return False
    if not selectors.workable_queues(delegate).filter(pk=item.queue_id).exists():
        return False
    held = WorkItem.objects.filter(assignee=delegate, state=ItemState.CLAIMED).count()
    return held < profile.capacity


def sla_sweep(*, now: dt.datetime | None = None, limit: int = 1000) -> dict[str, int]:
    """One pass of the SLA clock: mark at-risk items, climb the escalation ladder of
    overdue ones, hand back idle or orphaned work, and push what waits.

    Walks only rows whose time has come (partial indexes on warn_at / escalate_at),
    each batch in its own short transaction; safe to run side by side.
    """
    now = now or timezone.now()
    counts = {"warned": 0, "escalated": 0, "reassigned": 0, "pushed": 0}
    with transaction.atomic():
        for item in _due_items("warn_at", now, Q(warned_at__isnull=True), limit):
            _warn(item, now)
            counts["warned"] += 1
    policies: dict[int, SLAPolicy | None] = {}
    with transaction.atomic():
        due = _due_items("escalate_at", now, Q(), limit)
        # Rung 1 (the breach) is the common case and needs no per-item decisions: the
        # whole batch is marked, audited and announced in a few statements.
        climbing = [item for item in due if item.escalation_level > 0]
        _breach_all([item for item in due if item.escalation_level == 0], now, policies)
        for item in climbing:
            _escalate(item, now, policies)
        counts["escalated"] += len(due)
    with transaction.atomic():
        counts["reassigned"] = _idle_and_absent(now, limit)
    for queue in Queue.objects.exclude(strategy=Strategy.PULL):
        counts["pushed"] += queue_push(queue=queue, now=now)
    return counts


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


# Configuration (admin) ------------------------------------------------------------------

_CONFIG_ACTIONS = {
    "slapolicy": AuditAction.SLA_POLICY_CHANGED,
    "businesscalendar": AuditAction.SLA_POLICY_CHANGED,
}


def config_save(*, obj: Any, actor: ActorLike, reason: str) -> Any:
    """Save a queue, rule, skill, profile, SLA policy or calendar after validating it,
    with the before/after and the reason in the audit trail and its history."""
    return audited_save(obj=obj, actor=actor, reason=reason, action=_config_action(obj))


def config_delete(*, obj: Any, actor: ActorLike, reason: str) -> None:
    audited_delete(obj=obj, actor=actor, reason=reason, action=_config_action(obj))


def _config_action(obj: Any) -> str:
    return _CONFIG_ACTIONS.get(obj._meta.model_name, AuditAction.QUEUE_CHANGED)
