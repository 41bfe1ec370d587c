"""Reviewer actions: edit a proposed field, give a verdict, snooze.

Every action locks the work item, checks that the form the person acted on is still
current (the item's token), that they hold the item, and — for four-eyes — who they
are; then it records the decision, audits it, and lets the engine continue the case.
A refusal raises an ApplicationError with a message a person can act on, and
nothing is recorded.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.roles import Role, roles_of
from audit.models import AuditAction
from audit.services import record
from config.errors import ApplicationError, Conflict
from orchestration import services as engine
from review.models import Decision, DecisionRole, ItemEdit, Verdict
from routing import services as routing
from routing.models import ItemKind, ItemState, WorkItem

MAX_SNOOZE = dt.timedelta(days=30)
MAX_TEXT = 10_000
RETURN_TARGETS = ("previous", "submitter")


class StaleItem(Conflict):
    """The form was made for an earlier state of the item."""


def item_token(item: WorkItem) -> str:
    """What a form must echo back: changes whenever the item is reassigned, claimed
    again, moved on to its checker, or decided."""
    claimed = item.claimed_at.isoformat() if item.claimed_at else ""
    return f"{item.pk}:{item.state}:{item.assignee_id or ''}:{claimed}"


def _lock(item_id: int) -> WorkItem:
    return (
        WorkItem.objects.select_for_update(of=("self",))
        .select_related("case", "queue", "step_run", "case__workflow")
        .get(pk=item_id)
    )


def _check_current(item: WorkItem, reviewer: Any, token: str) -> None:
    """Refuse a stale form or someone who does not hold the item."""
    if item.state in (ItemState.DONE, ItemState.CANCELLED):
        raise StaleItem("This item has already been decided; nothing was recorded.")
    if token != item_token(item):
        raise StaleItem(
            "This item changed since you opened it (it was reassigned, moved on or decided). "
            "Reload it to see where it stands; nothing was recorded."
        )
    if item.state != ItemState.CLAIMED or item.assignee_id != reviewer.pk:
        raise Conflict("You do not hold this item; take it from your queue first.")


def role_for(item: WorkItem) -> str:
    if item.kind != ItemKind.FOUR_EYES:
        return DecisionRole.SINGLE
    return DecisionRole.CHECKER if item.maker_id else DecisionRole.MAKER


# Edits -------------------------------------------------------------------------------


def current_values(item: WorkItem) -> dict[str, Any]:
    """The case's proposed values with this item's edits applied, in order."""
    values = dict(item.case.proposed or {})
    for edit in item.edits.all():
        values[edit.field] = edit.after
    return values


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def coerce(field: str, current: Any, raw: str) -> Any:
    """Read `raw` as a value of the same type as the field's current value."""
    text = raw.strip()
    if len(text) > MAX_TEXT:
        raise ApplicationError(f"{field}: at most {MAX_TEXT} characters", field="value")
    if isinstance(current, bool):
        lowered = text.lower()
        if lowered in {"true", "yes", "1"}:
            return True
        if lowered in {"false", "no", "0"}:
            return False
        raise ApplicationError(f"{field} is yes or no, not {raw!r}", field="value")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise ApplicationError(
                f"{field} is a whole number, not {raw!r}", field="value"
            ) from None
    if isinstance(current, float):
        try:
            number = float(text)
        except ValueError:
            raise ApplicationError(f"{field} is a number, not {raw!r}", field="value") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ApplicationError(f"{field} must be a finite number", field="value")
        return number
    if isinstance(current, dict | list):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise ApplicationError(f"{field} must be valid JSON", field="value") from None
        if not isinstance(parsed, type(current)):
            kind = "an object" if isinstance(current, dict) else "a list"
            raise ApplicationError(f"{field} must be {kind} in JSON", field="value")
        return parsed
    if _is_date(current) and not _is_date(text):
        raise ApplicationError(f"{field} is a date like 2026-11-30, not {raw!r}", field="value")
    return text


@transaction.atomic
def item_edit(
    *, item: WorkItem, reviewer: Any, field: str, value: str, token: str, source: str = ""
) -> ItemEdit:
    """Change one proposed field of the item the reviewer holds; validated against the
    field's type and kept as one more change in the list."""
    locked = _lock(item.pk)
    _check_current(locked, reviewer, token)
    if role_for(locked) == DecisionRole.CHECKER:
        raise ApplicationError(
            "A checker confirms or disputes the maker's verdict; edits are the maker's.",
            field="field",
        )
    values = current_values(locked)
    if field not in values:
        raise ApplicationError(f"{field!r} is not a proposed field of this case", field="field")
    before = values[field]
    after = coerce(field, before, value)
    if after == before:
        raise ApplicationError(f"{field} already has that value", field="value")
    edit = ItemEdit.objects.create(
        work_item=locked,
        field=field,
        before=before,
        after=after,
        source=source[:200],
        editor=reviewer,
    )
    routing.work_item_touch(item=locked)
    record(
        actor=reviewer,
        action=AuditAction.ITEM_EDITED,
        subject=locked,
        case_id=locked.case_id,
        correlation_id=locked.case.correlation_id,
        before={field: before},
        after={field: after},
        reason=source,
    )
    return edit


@transaction.atomic
def suggestion_apply(*, item: WorkItem, reviewer: Any, index: int, token: str) -> ItemEdit:
    """Apply a worker's suggested value in one click (an edit whose source is the
    suggestion and its reason)."""
    from review.selectors import suggestions_for

    suggestions = suggestions_for(item)
    if not 0 <= index < len(suggestions):
        raise ApplicationError("that suggestion no longer exists", field="suggestion")
    chosen = suggestions[index]
    value = chosen["value"]
    raw = value if isinstance(value, str) else json.dumps(value)
    return item_edit(
        item=item,
        reviewer=reviewer,
        field=chosen["field"],
        value=raw,
        token=token,
        source=f"suggestion: {chosen.get('reason', '')}",
    )


# Verdicts ----------------------------------------------------------------------------


def _rationale(text: str, reasons: Sequence[str]) -> str:
    picked = [r.strip() for r in reasons if r and r.strip()]
    text = (text or "").strip()
    if not text and not picked:
        raise ApplicationError(
            "Give a rationale: pick a reason or write why (both are kept).", field="rationale"
        )
    if len(text) > MAX_TEXT:
        raise ApplicationError(
            f"the rationale is longer than {MAX_TEXT} characters", field="rationale"
        )
    return "; ".join([*picked, text] if text else picked)


def _check_four_eyes(item: WorkItem, reviewer: Any, role: str) -> Decision | None:
    """The maker's decision, when the reviewer may give the checker's verdict."""
    if role != DecisionRole.CHECKER:
        return None
    if item.maker_id == reviewer.pk:
        raise ApplicationError(
            "You made the first decision on this item; a different person must check it.",
            field="verdict",
        )
    if item.case.submitted_by_id is not None and item.case.submitted_by_id == reviewer.pk:
        raise ApplicationError("You submitted this case, so you cannot check it.", field="verdict")
    if Role.CHECKER not in roles_of(reviewer):
        raise ApplicationError("Only a person with the checker role may check.", field="verdict")
    return item.decisions.filter(role=DecisionRole.MAKER).order_by("-id").first()


@transaction.atomic
def decision_record(
    *,
    item: WorkItem,
    reviewer: Any,
    verdict: str,
    rationale: str,
    reasons: Sequence[str] = (),
    token: str,
    return_to: str = "",
) -> Decision:
    """Record the reviewer's verdict on the item they hold and act on it.

    single: approve / reject complete the review step (with the edits), return sends
    the case back for rework, escalate moves the item to the queue's escalation queue.
    four-eyes maker: approve / reject wait for a checker. four-eyes checker: agreeing
    with the maker completes the step, disagreeing escalates.
    """
    if verdict not in Verdict.values:
        raise ApplicationError(f"unknown verdict {verdict!r}", field="verdict")
    text = _rationale(rationale, reasons)
    locked = _lock(item.pk)
    _check_current(locked, reviewer, token)
    if locked.kind == ItemKind.QA:
        raise ApplicationError("QA items are checked on the QA screen.", field="verdict")
    role = role_for(locked)
    maker_decision = _check_four_eyes(locked, reviewer, role)
    if role == DecisionRole.CHECKER and verdict == Verdict.RETURN:
        raise ApplicationError(
            "A checker agrees or disagrees with the maker; returning is the maker's call.",
            field="verdict",
        )
    if verdict == Verdict.RETURN and return_to not in RETURN_TARGETS:
        raise ApplicationError(
            "Return to the submitter or to the previous step?", field="return_to"
        )
    if verdict == Verdict.ESCALATE and locked.queue.escalation_queue_id is None:
        raise ApplicationError(
            f"Queue {locked.queue.title} has no escalation queue; ask a manager to reassign it.",
            field="verdict",
        )
    edits = [
        {"field": e.field, "before": e.before, "after": e.after, "source": e.source}
        for e in locked.edits.all()
    ]
    now = timezone.now()
    agrees = None
    if maker_decision is not None and verdict in (Verdict.APPROVE, Verdict.REJECT):
        agrees = verdict == maker_decision.verdict
    # Each escalation or dispute opened a new round in which the item is decided again.
    round_ = locked.decisions.filter(
        Q(verdict=Verdict.ESCALATE) | Q(agrees_with_maker=False)
    ).count()
    try:
        with transaction.atomic():
            decision = Decision.objects.create(
                work_item=locked,
                case=locked.case,
                reviewer=reviewer,
                role=role,
                verdict=verdict,
                edits=edits if role != DecisionRole.CHECKER else [],
                rationale=text,
                reasons=list(reasons),
                return_to=return_to if verdict == Verdict.RETURN else "",
                maker=locked.maker if role == DecisionRole.CHECKER else None,
                submitter=locked.case.submitted_by if role == DecisionRole.CHECKER else None,
                agrees_with_maker=agrees,
                round=round_,
                time_spent=now - locked.claimed_at if locked.claimed_at else None,
            )
    except IntegrityError:
        raise Conflict(
            "This verdict has already been recorded; nothing was recorded again."
        ) from None
    record(
        actor=reviewer,
        action=AuditAction.DECISION_RECORDED,
        subject=decision,
        case_id=locked.case_id,
        correlation_id=locked.case.correlation_id,
        after={
            "item": locked.pk,
            "role": role,
            "verdict": verdict,
            "edits": len(decision.edits),
            "agrees_with_maker": agrees,
            "return_to": decision.return_to,
        },
        reason=text,
    )
    _act(locked, decision, maker_decision, reviewer, now)
    transaction.on_commit(partial(routing.capacity_freed, user=reviewer))
    return decision


def _finish(item: WorkItem, now: dt.datetime) -> None:
    item.state = ItemState.DONE
    item.decided_at = now
    item.snoozed_until = None
    item.save(update_fields=["state", "decided_at", "snoozed_until", "updated_at"])


def _complete_step(item: WorkItem, verdict: str, decision: Decision, reviewer: Any) -> None:
    edits = (
        decision.edits
        if decision.role != DecisionRole.CHECKER
        else (
            item.decisions.filter(role=DecisionRole.MAKER).order_by("-id").first() or decision
        ).edits
    )
    # Edits change the case only when the verdict approves; a rejection keeps the
    # proposal as the workers made it (the edits stay in the record).
    proposed = (
        {edit["field"]: edit["after"] for edit in edits} if verdict == Verdict.APPROVE else {}
    )
    output: dict[str, Any] = {
        "decision_id": decision.pk,
        "rationale": decision.rationale,
        # Every verdict on the item (maker and checker too), for the case's API detail.
        "decisions": [
            {
                "role": d.role,
                "reviewer": d.reviewer.get_username(),
                "verdict": d.verdict,
                "rationale": d.rationale,
                "at": d.created_at.isoformat(),
            }
            for d in item.decisions.select_related("reviewer").order_by("id")
        ],
    }
    if proposed:
        output["proposed"] = proposed
    if edits:
        output["edits"] = edits
    engine.review_step_complete(
        step_run=item.step_run, outcome=verdict, actor=reviewer, output=output
    )


def _escalate(
    item: WorkItem, reviewer: Any, reason: str, now: dt.datetime, *, dispute: bool = False
) -> None:
    """Send the item up: to its queue's escalation queue one priority class higher, where
    one person decides it alone. A four-eyes dispute bars its maker and checker from
    settling it; with no escalation queue it goes back to its queue, flagged for a
    manager to hand to someone else."""
    if dispute:
        barred = {*(item.excluded_reviewers or []), item.maker_id, reviewer.pk}
        item.excluded_reviewers = sorted(pk for pk in barred if pk is not None)
    item.kind = ItemKind.REVIEW
    item.maker = None
    item.escalation_level = max(item.escalation_level, 1)
    item.save(
        update_fields=["kind", "maker", "excluded_reviewers", "escalation_level", "updated_at"]
    )
    target = item.queue.escalation_queue
    if target is None:
        item.flag = "four-eyes disagreement: a manager must pick who settles it"
        item.save(update_fields=["flag", "updated_at"])
        routing.work_items_reassign(item_ids=[item.pk], to_user=None, actor=reviewer, reason=reason)
        return
    routing.work_items_move(
        item_ids=[item.pk], queue=target, actor=reviewer, reason=reason, raise_priority=True
    )


def _act(
    item: WorkItem, decision: Decision, maker: Decision | None, reviewer: Any, now: dt.datetime
) -> None:
    verdict = decision.verdict
    if verdict == Verdict.ESCALATE:
        _escalate(
            item, reviewer, f"escalated by {reviewer.get_username()}: {decision.rationale}", now
        )
        return
    if verdict == Verdict.RETURN:
        _finish(item, now)
        engine.review_step_return(
            step_run=item.step_run,
            to=decision.return_to,
            instructions=decision.rationale,
            actor=reviewer,
        )
        return
    if decision.role == DecisionRole.MAKER:
        # First of four eyes: wait, unassigned, for a checker who is someone else.
        item.state = ItemState.AWAITING_CHECKER
        item.maker = reviewer
        item.assignee = None
        item.claimed_at = None
        item.last_activity_at = None
        item.save(
            update_fields=[
                "state",
                "maker",
                "assignee",
                "claimed_at",
                "last_activity_at",
                "updated_at",
            ]
        )
        return
    if decision.role == DecisionRole.CHECKER and not decision.agrees_with_maker:
        _escalate(
            item,
            reviewer,
            f"four-eyes disagreement: maker {maker.verdict if maker else '?'}, "
            f"checker {verdict}: {decision.rationale}",
            now,
            dispute=True,
        )
        return
    _finish(item, now)
    _complete_step(item, verdict, decision, reviewer)


# Snooze ------------------------------------------------------------------------------


@transaction.atomic
def item_snooze(
    *, item: WorkItem, reviewer: Any, until: dt.datetime, reason: str, token: str
) -> WorkItem:
    """Park an item the reviewer holds until a follow-up time (it stays theirs; the
    SLA clock keeps running and the idle sweep leaves it alone until then)."""
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("Say why you are snoozing it.", field="reason")
    now = timezone.now()
    if until <= now:
        raise ApplicationError("The follow-up time must be in the future.", field="until")
    if until - now > MAX_SNOOZE:
        raise ApplicationError("Snooze for at most 30 days.", field="until")
    locked = _lock(item.pk)
    _check_current(locked, reviewer, token)
    locked.snoozed_until = until
    locked.snooze_reason = reason[:500]
    locked.last_activity_at = now
    locked.save(update_fields=["snoozed_until", "snooze_reason", "last_activity_at", "updated_at"])
    record(
        actor=reviewer,
        action=AuditAction.ITEM_SNOOZED,
        subject=locked,
        case_id=locked.case_id,
        correlation_id=locked.case.correlation_id,
        after={"until": until.isoformat()},
        reason=reason,
    )
    return locked


def next_item(*, reviewer: Any) -> WorkItem | None:
    """The next review claimed through routing for "Next item", or None."""
    return routing.work_item_claim_next(
        reviewer=reviewer, kinds=[ItemKind.REVIEW, ItemKind.FOUR_EYES]
    )
