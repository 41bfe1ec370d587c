"""Read queries of the reviewer workspace: inbox, the items a person may see, what a
worker suggested, the case's sources and the diffs a reviewer judges."""

from __future__ import annotations

import difflib
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

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


# The reviewer workspace -------------------------------------------------------------


def _may_work(user: Any, queue_id: int) -> bool:
    return workable_queues(user).filter(pk=queue_id).exists()


def visible_item(*, user: Any, item_id: int) -> WorkItem | None:
    """The review item if this person may see it, else None (the caller answers 404 and
    so leaks nothing): its holder or maker, a reviewer of its queue, or a manager
    whose regions include the item's."""
    from accounts.roles import Role, roles_of

    item = (
        WorkItem.objects.filter(pk=item_id, kind__in=[ItemKind.REVIEW, ItemKind.FOUR_EYES])
        .select_related("case__workflow", "queue", "step_run", "assignee", "maker")
        .first()
    )
    if item is None:
        return None
    if user.pk in (item.assignee_id, item.maker_id):
        return item
    roles = roles_of(user)
    if roles & {Role.REVIEWER, Role.CHECKER} and _may_work(user, item.queue_id):
        return item
    if Role.MANAGER in roles:
        profile = ReviewerProfile.objects.filter(user=user).first()
        if profile is not None and (not item.region or item.region in profile.regions):
            return item
    return None


@dataclass(frozen=True)
class SlaView:
    state: str  # words, never colour alone: on time, at risk, breached, no SLA
    css: str
    left: str  # "due in 2 h 10 min" / "overdue by 15 min"


def sla_view(item: WorkItem, now: Any = None) -> SlaView:
    from routing.dashboard import short_duration

    now = now or timezone.now()
    if item.due_at is None:
        return SlaView("no SLA", "sla-none", "")
    if item.due_at <= now:
        return SlaView(
            "breached", "sla-breached", f"overdue by {short_duration(now - item.due_at)}"
        )
    left = f"due in {short_duration(item.due_at - now)}"
    if item.warn_at is not None and item.warn_at <= now:
        return SlaView("at risk", "sla-at-risk", left)
    return SlaView("on time", "sla-on-time", left)


def held_items(*, reviewer: Any) -> list[WorkItem]:
    """Review items this person holds, oldest claim first."""
    return list(
        WorkItem.objects.filter(
            assignee=reviewer,
            state=ItemState.CLAIMED,
            kind__in=[ItemKind.REVIEW, ItemKind.FOUR_EYES],
        )
        .select_related("case__workflow", "queue")
        .order_by("claimed_at", "id")
    )


def workable_counts(*, reviewer: Any) -> list[tuple[Any, int]]:
    """Per queue this person may work: how many items they could take now."""
    from django.db.models import Count

    from accounts.roles import Role, roles_of
    from routing.selectors import claimable_items

    profile = ReviewerProfile.objects.filter(user=reviewer).first()
    queues = list(workable_queues(reviewer))
    if profile is None or not queues:
        return [(queue, 0) for queue in queues]
    counts = dict(
        claimable_items(profile=profile, queues=queues, checker=Role.CHECKER in roles_of(reviewer))
        .filter(kind__in=[ItemKind.REVIEW, ItemKind.FOUR_EYES])
        .order_by()
        .values_list("queue")
        .annotate(n=Count("id"))
    )
    return [(queue, counts.get(queue.pk, 0)) for queue in queues]


def why_no_next_item(*, reviewer: Any) -> str:
    """Why "Next item" came back empty, in words a reviewer can act on."""
    reason = why_nothing_claimed(reviewer=reviewer)
    if reason.startswith("No QA item") or reason.startswith("QA items are waiting"):
        return "Nothing is waiting for you right now. Check back soon, or ask a manager."
    return reason


# Suggestions, sources and diffs -------------------------------------------------------


def suggestions_for(item: WorkItem) -> list[dict[str, Any]]:
    """Suggested values from the workers' outputs, for fields the reviewer may edit:
    [{"field", "value", "reason"}], first suggestion of each (field, value) only."""
    from orchestration.models import StepStatus

    editable = set(item.case.proposed or {})
    seen: set[tuple[str, str]] = set()
    found: list[dict[str, Any]] = []
    runs = item.case.step_runs.filter(
        kind="task", status=StepStatus.SUCCEEDED, is_compensation=False
    ).order_by("created_at", "id")
    for run in runs:
        for suggestion in (run.output or {}).get("suggestions") or []:
            if not isinstance(suggestion, dict) or suggestion.get("field") not in editable:
                continue
            key = (str(suggestion["field"]), json.dumps(suggestion.get("value"), default=str))
            if key in seen or "value" not in suggestion:
                continue
            seen.add(key)
            found.append(
                {
                    "field": str(suggestion["field"]),
                    "value": suggestion["value"],
                    "reason": str(suggestion.get("reason", "")),
                    "step": run.step_id,
                }
            )
    return found


TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass(frozen=True)
class Segment:
    kind: str  # equal, del, ins
    text: str


def word_diff(before: str, after: str) -> list[Segment]:
    """Word-level differences between two texts, as equal / deleted / inserted runs."""
    old, new = TOKEN.findall(before), TOKEN.findall(after)
    segments: list[Segment] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            segments.append(Segment("equal", "".join(old[a1:a2])))
            continue
        if a2 > a1:
            segments.append(Segment("del", "".join(old[a1:a2])))
        if b2 > b1:
            segments.append(Segment("ins", "".join(new[b1:b2])))
    return segments


MISSING = object()


def _shown(value: Any) -> str:
    if value is MISSING:
        return "(not given)"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@dataclass(frozen=True)
class FieldDiff:
    field: str
    before: str
    after: str
    changed: bool
    segments: list[Segment]


def _diff_row(field: str, before: Any, after: Any) -> FieldDiff:
    shown_before, shown_after = _shown(before), _shown(after)
    changed = shown_before != shown_after
    segments = word_diff(shown_before, shown_after) if changed else []
    return FieldDiff(field, shown_before, shown_after, changed, segments)


def proposal_diff(item: WorkItem) -> list[FieldDiff]:
    """Each proposed field against what the submitter sent (the payload)."""
    payload = item.case.payload or {}
    return [
        _diff_row(field, payload.get(field, MISSING), value)
        for field, value in sorted((item.case.proposed or {}).items())
    ]


def edits_diff(item: WorkItem) -> list[FieldDiff]:
    """The reviewer's (for a checker: the maker's) edits against the proposal, per field,
    first value against last."""
    first: dict[str, Any] = {}
    last: dict[str, Any] = {}
    for edit in item.edits.all():
        first.setdefault(edit.field, edit.before)
        last[edit.field] = edit.after
    return [_diff_row(field, first[field], last[field]) for field in sorted(last)]


SAFE_SCHEMES = ("http://", "https://")
TABLE_LIMIT = 200


def _tree(value: Any, depth: int = 0) -> SafeString:
    """A JSON value as nested lists; every leaf is escaped by format_html."""
    if depth > 12:
        return format_html("<code>{}</code>", _shown(value)[:200])
    if isinstance(value, dict):
        if not value:
            return mark_safe("<code>{}</code>")
        return format_html(
            '<ul class="json-tree">{}</ul>',
            format_html_join(
                "",
                "<li><details open><summary>{}</summary>{}</details></li>",
                ((key, _tree(child, depth + 1)) for key, child in value.items()),
            ),
        )
    if isinstance(value, list):
        if not value:
            return mark_safe("<code>[]</code>")
        return format_html(
            '<ol class="json-tree" start="0">{}</ol>',
            format_html_join("", "<li>{}</li>", ((_tree(child, depth + 1),) for child in value)),
        )
    return format_html("<code>{}</code>", _shown(value))


@dataclass(frozen=True)
class SourceView:
    title: str
    kind: str
    text: str = ""
    tree: SafeString | None = None
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    url: str = ""
    note: str = ""


def _table(content: Any) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]] | None:
    rows = content.get("rows") if isinstance(content, dict) else content
    if not isinstance(rows, list) or not rows:
        return None
    if all(isinstance(row, dict) for row in rows):
        columns: list[str] = []
        for row in rows:
            columns.extend(str(key) for key in row if str(key) not in columns)
        body = tuple(
            tuple(_shown(row.get(col, "")) for col in columns) for row in rows[:TABLE_LIMIT]
        )
        return tuple(columns), body
    if all(isinstance(row, list) for row in rows):
        header = content.get("columns") if isinstance(content, dict) else None
        width = max(len(row) for row in rows)
        names = (
            tuple(str(c) for c in header)
            if isinstance(header, list)
            else tuple(f"column {n + 1}" for n in range(width))
        )
        return names, tuple(tuple(_shown(c) for c in row) for row in rows[:TABLE_LIMIT])
    return None


def source_views(case: Any) -> list[SourceView]:
    """The case's sources, each as text, a JSON tree, a table or a link; anything a
    submitter sent is shown as data and never as markup."""
    views: list[SourceView] = []
    for n, source in enumerate(case.sources or []):
        if not isinstance(source, dict):
            views.append(SourceView(f"Source {n + 1}", "json", tree=_tree(source)))
            continue
        title = str(source.get("title") or f"Source {n + 1}")[:200]
        kind = str(source.get("kind") or "json")
        content = source.get("content")
        if kind == "url":
            url = str(source.get("url") or content or "")
            if url.lower().startswith(SAFE_SCHEMES):
                views.append(SourceView(title, kind, url=url))
            else:
                views.append(
                    SourceView(
                        title,
                        kind,
                        text=url,
                        note="Not a web link (only http and https addresses open), shown as text.",
                    )
                )
        elif kind == "text" and isinstance(content, str):
            views.append(SourceView(title, kind, text=content[:SUMMARY_LIMIT]))
        elif kind == "table" and (table := _table(content)) is not None:
            views.append(SourceView(title, kind, columns=table[0], rows=table[1]))
        else:
            views.append(
                SourceView(title, "json", tree=_tree(content if content is not None else source))
            )
    return views


# The case's timeline and evidence pack (audit registry) ---------------------------------


def _case_uuid(case_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(case_id))
    except ValueError:
        return None


def decision_timeline(case_id: str) -> list[Any]:
    from audit.registry import TimelineEntry
    from review.models import Decision

    pk = _case_uuid(case_id)
    if pk is None:
        return []
    return [
        TimelineEntry(
            at=decision.created_at,
            kind="decision",
            title=f"{decision.get_role_display().lower()} {decision.verdict}",
            actor=decision.reviewer.get_username(),
            detail={
                "item": decision.work_item_id,
                "rationale": decision.rationale,
                "edits": decision.edits,
                "return_to": decision.return_to,
                "agrees_with_maker": decision.agrees_with_maker,
            },
            order=decision.pk,
        )
        for decision in Decision.objects.filter(case_id=pk).select_related("reviewer")
    ]


def decisions_evidence(case_id: str) -> list[dict[str, Any]] | None:
    from review.models import Decision, ItemEdit

    pk = _case_uuid(case_id)
    if pk is None:
        return None
    edits: dict[int, list[dict[str, Any]]] = {}
    for edit in ItemEdit.objects.filter(work_item__case_id=pk).select_related("editor"):
        edits.setdefault(edit.work_item_id, []).append(
            {
                "field": edit.field,
                "before": edit.before,
                "after": edit.after,
                "source": edit.source,
                "editor": edit.editor.get_username(),
                "at": edit.created_at.isoformat(),
            }
        )
    return [
        {
            "id": d.pk,
            "item": d.work_item_id,
            "role": d.role,
            "reviewer": d.reviewer.get_username(),
            "verdict": d.verdict,
            "rationale": d.rationale,
            "reasons": d.reasons,
            "return_to": d.return_to,
            "maker": d.maker.get_username() if d.maker else None,
            "agrees_with_maker": d.agrees_with_maker,
            "time_spent_seconds": d.time_spent.total_seconds() if d.time_spent else None,
            "at": d.created_at.isoformat(),
            "edits": edits.get(d.work_item_id, []),
        }
        for d in Decision.objects.filter(case_id=pk).select_related("reviewer", "maker")
    ]
