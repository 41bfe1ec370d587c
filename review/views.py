"""The reviewer workspace: QA of sampled automatic approvals.

A QA reviewer takes the next QA item, looks at the case, the gate's record and the
automatic decision, and files a finding (agree, or disagree with a note) that the
calibration report counts per cell.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.roles import Role, roles_of
from config.errors import ApplicationError, Conflict
from orchestration.services import qa_finding_record
from review import selectors
from review.forms import QaFindingForm
from routing.models import ItemKind, ItemState, WorkItem
from routing.services import work_item_claim_next, work_item_complete

REVIEW_ROLES = frozenset({Role.REVIEWER, Role.CHECKER})

View = Callable[..., HttpResponse]


def _is_reviewer(request: HttpRequest) -> bool:
    return bool(roles_of(request.user) & REVIEW_ROLES)


def _reviewers_only(view: View) -> View:
    """Signed in (else to sign-in) and a reviewer or checker (else 403)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not _is_reviewer(request):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return login_required(wrapped)


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
