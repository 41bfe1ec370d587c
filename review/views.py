"""The reviewer workspace: inbox, the item workspace, and QA of automatic approvals.

A QA reviewer takes the next QA item, looks at the case, the gate's record and the
automatic decision, and files a finding (agree, or disagree with a note) that the
calibration report counts per cell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_http_methods

from accounts.decorators import roles_required
from accounts.roles import Role, roles_of
from config.errors import ApplicationError, Conflict
from config.htmx import HtmxHttpRequest
from orchestration.services import qa_finding_record
from review import selectors, services
from review.forms import QaFindingForm
from review.models import Decision, DecisionRole, Verdict
from routing import services as routing_services
from routing.models import ItemKind, ItemState, WorkItem
from routing.services import work_item_claim_next, work_item_complete

REVIEW_ROLES = frozenset({Role.REVIEWER, Role.CHECKER})

View = Callable[..., HttpResponse]


def _is_reviewer(request: HttpRequest) -> bool:
    return bool(roles_of(request.user) & REVIEW_ROLES)


_reviewers_only = roles_required(
    REVIEW_ROLES, "The review workspace is for reviewers and checkers."
)


@require_http_methods(["GET", "POST"])
@_reviewers_only
def qa_list(request: HttpRequest) -> HttpResponse:
    """The QA items I hold, how many wait for me; POST takes the next one."""
    if request.method == "POST":
        item = work_item_claim_next(reviewer=request.user, kinds=[ItemKind.QA])
        if item is None:
            messages.info(request, selectors.why_nothing_claimed(reviewer=request.user))
            return redirect("review:qa_list")
        return redirect("review:qa_item", item_id=item.pk)
    return render(
        request,
        "review/qa_list.html",
        {
            "items": list(selectors.qa_items_held(reviewer=request.user)),
            "waiting": selectors.qa_items_waiting(reviewer=request.user),
        },
    )


def _item_page(
    request: HttpRequest, item: WorkItem, form: QaFindingForm, *, status: int = 200
) -> HttpResponse:
    run = item.step_run
    case = item.case
    return render(
        request,
        "review/qa_item.html",
        {
            "item": item,
            "case": case,
            "run": run,
            "gate": run.gate or {},
            "decided_by": (run.output or {}).get("decided_by", ""),
            "payload": selectors.json_summary(case.payload),
            "proposed": selectors.json_summary(case.proposed) if case.proposed else None,
            "form": form,
        },
        status=status,
    )


# Once finished, the assignee is told so instead of getting a 404; other states (the
# item went back to a queue, or waits for a checker) are not this person's any more.
FINISHED: dict[str, str] = {ItemState.DONE: "finished", ItemState.CANCELLED: "cancelled"}


@require_http_methods(["GET", "POST"])
@login_required
def qa_item(request: HttpRequest, item_id: int) -> HttpResponse:
    """One QA item, for its assignee only: the case, the gate, the finding form.

    Everyone else gets 404, never 403, so the page does not tell whether the item
    exists.
    """
    item = None
    if _is_reviewer(request):
        item = selectors.qa_item_of(reviewer=request.user, item_id=item_id)
    if item is None or (item.state != ItemState.CLAIMED and item.state not in FINISHED):
        raise Http404("No such QA item of yours.")
    if request.method == "GET":
        if item.state in FINISHED:
            messages.info(request, f"This QA item is already {FINISHED[item.state]}.")
            return redirect("review:qa_list")
        return _item_page(request, item, QaFindingForm())

    form = QaFindingForm(request.POST)
    if not form.is_valid():
        return _item_page(request, item, form, status=400)
    try:
        with transaction.atomic():
            # Complete first: it locks the item row, so a second submit racing this one
            # waits, then finds the item done and is refused before recording anything.
            work_item_complete(item=item, actor=request.user)
            qa_finding_record(
                step_run=item.step_run,
                reviewer=request.user,
                agrees=form.agrees,
                note=form.cleaned_data["note"],
            )
    except Conflict as exc:
        item = _fresh(item)
        if item.state in FINISHED:
            messages.warning(
                request,
                f"This QA item is already {FINISHED[item.state]}; nothing was recorded again. "
                f"({exc.message})",
            )
            return redirect("review:qa_list")
        form.add_error(None, exc.message)
        return _item_page(request, item, form, status=409)
    except ApplicationError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return _item_page(request, _fresh(item), form, status=400)
    verdict = "agreed with" if form.agrees else "disagreed with"
    messages.success(
        request,
        f"Finding filed: you {verdict} the automatic approval of "
        f"{item.case.external_ref or item.case_id}.",
    )
    return redirect("review:qa_list")


def _fresh(item: WorkItem) -> WorkItem:
    """The item as stored: a refused submit rolled back, but may have changed our copy."""
    item.refresh_from_db()
    return item


# The reviewer workspace -------------------------------------------------------------

QUICK_REASONS = (
    "Matches the source documents",
    "Proposal corrected against the source",
    "Values do not match the source",
    "Required information is missing",
    "Policy exception",
    "Needs a specialist",
)
ITEM_QUERY_SET = ("case__workflow", "queue", "step_run")


@require_http_methods(["GET"])
@_reviewers_only
def inbox(request: HttpRequest) -> HttpResponse:
    """My claimed items with their SLA state, what I may take per queue, my snoozed
    items, and "Next item"."""
    now = timezone.now()
    held = selectors.held_items(reviewer=request.user)
    active = [i for i in held if not i.snoozed_until or i.snoozed_until <= now]
    snoozed = [i for i in held if i.snoozed_until and i.snoozed_until > now]
    return render(
        request,
        "review/inbox.html",
        {
            "active": [(item, selectors.sla_view(item, now)) for item in active],
            "snoozed": [(item, selectors.sla_view(item, now)) for item in snoozed],
            "counts": selectors.workable_counts(reviewer=request.user),
            "now": now,
        },
    )


@require_http_methods(["POST"])
@_reviewers_only
def next_item(request: HttpRequest) -> HttpResponse:
    """Claim the next item through routing and open it; say why when there is none."""
    item = services.next_item(reviewer=request.user)
    if item is None:
        messages.info(request, selectors.why_no_next_item(reviewer=request.user))
        return redirect("review:inbox")
    return redirect("review:item", item_id=item.pk)


def _visible_or_404(request: HttpRequest, item_id: int) -> WorkItem:
    item = selectors.visible_item(user=request.user, item_id=item_id)
    if item is None:
        raise Http404("No such item for you.")
    return item


def _workspace_context(request: HttpRequest, item: WorkItem, **extra: Any) -> dict[str, Any]:
    case = item.case
    holder = item.state == ItemState.CLAIMED and item.assignee_id == request.user.pk
    role = services.role_for(item)
    maker_decision = (
        item.decisions.filter(role=DecisionRole.MAKER).select_related("reviewer").last()
        if item.maker_id
        else None
    )
    return {
        "item": item,
        "case": case,
        "gate": item.step_run.gate or {},
        "sla": selectors.sla_view(item),
        "holder": holder,
        "role": role,
        "is_checker": role == DecisionRole.CHECKER,
        "maker_decision": maker_decision,
        "token": services.item_token(item),
        "sources": selectors.source_views(case),
        "diff": selectors.proposal_diff(item),
        "edits_diff": selectors.edits_diff(item),
        "edits": list(item.edits.select_related("editor")),
        "values": sorted(services.current_values(item).items()),
        "suggestions": list(enumerate(selectors.suggestions_for(item))),
        "quick_reasons": QUICK_REASONS,
        "verdicts": _verdicts_for(role),
        "has_escalation": item.queue.escalation_queue_id is not None,
        "decisions": list(item.decisions.select_related("reviewer")),
        **extra,
    }


def _verdicts_for(role: str) -> list[tuple[str, str]]:
    if role == DecisionRole.CHECKER:
        return [
            (Verdict.APPROVE, "Approve (agree if the maker approved)"),
            (Verdict.REJECT, "Reject (agree if the maker rejected)"),
            (Verdict.ESCALATE, "Escalate"),
        ]
    return list(Verdict.choices)


@require_http_methods(["GET"])
@login_required
def item_page(request: HttpRequest, item_id: int) -> HttpResponse:
    """The workspace: header, sources, diff, suggestions, edits, verdict."""
    item = _visible_or_404(request, item_id)
    if item.state == ItemState.CLAIMED and item.assignee_id == request.user.pk:
        routing_services.work_item_touch(item=item)
    return render(request, "review/item.html", _workspace_context(request, item))


def _refused(
    request: HtmxHttpRequest,
    item_id: int,
    exc: ApplicationError,
    *,
    partial: str = "",
    **extra: Any,
) -> HttpResponse:
    item = _visible_or_404(request, item_id)
    context = _workspace_context(request, item, error=exc.message, error_field=exc.field, **extra)
    template = f"review/item.html#{partial}" if partial and request.htmx else "review/item.html"
    return render(request, template, context, status=exc.status)


@require_http_methods(["POST"])
@login_required
def item_edit(request: HtmxHttpRequest, item_id: int) -> HttpResponse:
    """One-click edit of a proposed field (htmx: the values panel comes back)."""
    item = _visible_or_404(request, item_id)
    field = request.POST.get("field", "")
    try:
        services.item_edit(
            item=item,
            reviewer=request.user,
            field=field,
            value=request.POST.get("value", ""),
            token=request.POST.get("token", ""),
        )
    except ApplicationError as exc:
        return _refused(request, item_id, exc, partial="values", edited_field=field)
    return _after_edit(request, item_id, f"{field} changed.", field)


@require_http_methods(["POST"])
@login_required
def suggestion_apply(request: HtmxHttpRequest, item_id: int, index: int) -> HttpResponse:
    item = _visible_or_404(request, item_id)
    try:
        edit = services.suggestion_apply(
            item=item, reviewer=request.user, index=index, token=request.POST.get("token", "")
        )
    except ApplicationError as exc:
        return _refused(request, item_id, exc, partial="values")
    return _after_edit(request, item_id, f"Suggestion applied to {edit.field}.", edit.field)


def _after_edit(request: HtmxHttpRequest, item_id: int, notice: str, field: str) -> HttpResponse:
    if not request.htmx:
        messages.success(request, notice)
        return redirect("review:item", item_id=item_id)
    item = _visible_or_404(request, item_id)
    context = _workspace_context(request, item, notice=notice, edited_field=field)
    return render(request, "review/item.html#values", context)


@require_http_methods(["POST"])
@login_required
def decide(request: HtmxHttpRequest, item_id: int) -> HttpResponse:
    """Record the verdict; "approve & next" opens the next item straight away."""
    item = _visible_or_404(request, item_id)
    verdict = request.POST.get("verdict", "")
    try:
        decision = services.decision_record(
            item=item,
            reviewer=request.user,
            verdict=verdict,
            rationale=request.POST.get("rationale", ""),
            reasons=request.POST.getlist("reasons"),
            token=request.POST.get("token", ""),
            return_to=request.POST.get("return_to", ""),
        )
    except services.StaleItem as exc:
        messages.warning(request, exc.message)
        return redirect("review:item", item_id=item_id)
    except ApplicationError as exc:
        return _refused(request, item_id, exc, form=request.POST)
    messages.success(request, _decided_message(decision))
    if request.POST.get("then") == "next":
        following = services.next_item(reviewer=request.user)
        if following is not None:
            return redirect("review:item", item_id=following.pk)
        messages.info(request, selectors.why_no_next_item(reviewer=request.user))
    return redirect("review:inbox")


def _decided_message(decision: Decision) -> str:
    case = decision.case.external_ref or str(decision.case_id)
    if decision.role == DecisionRole.MAKER:
        return f"Your {decision.verdict} of {case} is recorded; it now waits for a checker."
    if decision.role == DecisionRole.CHECKER and not decision.agrees_with_maker:
        return f"You disagreed with the maker on {case}; it went to the escalation queue."
    return f"{decision.get_verdict_display()}: {case} is recorded."


@require_http_methods(["POST"])
@login_required
def snooze(request: HtmxHttpRequest, item_id: int) -> HttpResponse:
    item = _visible_or_404(request, item_id)
    raw = request.POST.get("until", "")
    until = parse_datetime(raw) if raw else None
    try:
        if until is None:
            raise ApplicationError("Give a follow-up time like 2026-12-01 09:00.", field="until")
        if timezone.is_naive(until):
            until = timezone.make_aware(until)
        services.item_snooze(
            item=item,
            reviewer=request.user,
            until=until,
            reason=request.POST.get("reason", ""),
            token=request.POST.get("token", ""),
        )
    except services.StaleItem as exc:
        messages.warning(request, exc.message)
        return redirect("review:item", item_id=item_id)
    except ApplicationError as exc:
        return _refused(request, item_id, exc, snooze_form=request.POST)
    messages.success(request, f"Snoozed until {until:%Y-%m-%d %H:%M}.")
    return redirect("review:inbox")
