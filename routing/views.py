"""The SLA aging dashboard under /dashboard/, for managers and admins.

The index shows per-queue figures, the age-bucket bars and the backlog line (its
summary refreshes itself with htmx); a queue's page lists its open items and lets a
manager reassign or move many at once. Reads go through routing.dashboard, writes
through routing.services.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from accounts.decorators import managers_only
from config.errors import ApplicationError
from config.htmx import HtmxHttpRequest
from routing import dashboard, services, svg
from routing.models import Queue, Skill

PAGE_SIZE = 50


View = Callable[..., HttpResponse]


def _raw_filters(request: HttpRequest) -> dict[str, str]:
    """The filter inputs as typed, to show them again (escaped) next to a problem."""
    return {name: request.GET.get(name, "")[:80] for name in ("region", "skill")}


@require_GET
@managers_only
@vary_on_headers("HX-Request")  # the same URL answers a partial to htmx: keep caches apart
def index(request: HtmxHttpRequest) -> HttpResponse:
    """Per queue: backlog, age buckets, SLA risk, oldest item, WIP, the last 24 hours."""
    buckets = dashboard.age_buckets()
    context: dict[str, Any] = {"buckets": buckets, "form_values": _raw_filters(request)}
    try:
        filters = dashboard.filters_from(request.GET)
    except ApplicationError as exc:
        context["problem"] = exc.message
        return render(request, "routing/dashboard.html", context, status=exc.status)
    now = timezone.now()
    scan = dashboard.window_scan(filters=filters, now=now, buckets=buckets)
    figures = dashboard.dashboard_figures(filters=filters, now=now, buckets=buckets, scan=scan)
    backlog = dashboard.backlog_series(filters=filters, now=now, scan=scan)
    context.update(
        {
            "now": now,
            "filters": filters,
            "figures": figures,
            "totals": dashboard.totals(figures, buckets),
            "bars": svg.stacked_bars(
                chart_id="age-chart",
                title="Open items per queue by age",
                categories=[f.queue.title for f in figures],
                series=[b.label for b in buckets],
                values=[f.bucket_counts for f in figures],
            ),
            "backlog_chart": svg.line_chart(
                chart_id="backlog-chart",
                title="Open items over the last 24 hours",
                points=backlog,
            ),
        }
    )
    if request.htmx:
        return render(request, "routing/dashboard.html#summary", context)
    regions = {
        r for listed in Queue.objects.values_list("regions", flat=True) for r in listed or []
    }
    context["regions"] = sorted(regions)
    context["skills"] = list(Skill.objects.values_list("name", flat=True))
    return render(request, "routing/dashboard.html", context)


def _queue_page(
    request: HttpRequest,
    queue: Queue,
    *,
    action_problem: str = "",
    problem_field: str = "",
    status: int = 200,
) -> HttpResponse:
    """A queue's open items (filtered by the query string) and the bulk action form."""
    buckets = dashboard.age_buckets()
    context: dict[str, Any] = {
        "queue": queue,
        "buckets": buckets,
        "form_values": {
            **_raw_filters(request),
            "bucket": request.GET.get("bucket", "")[:80],
            "sla": request.GET.get("sla", "")[:80],
        },
        "sla_states": dashboard.SLA_STATES,
        "action_problem": action_problem,
        "problem_field": problem_field,
        "selected": set(request.POST.getlist("item")),
        "posted": request.POST,
        "query": request.GET.urlencode(),
    }
    try:
        filters = dashboard.filters_from(request.GET)
        bucket = dashboard.bucket_from(request.GET, buckets)
        sla = dashboard.sla_from(request.GET)
    except ApplicationError as exc:
        context["problem"] = exc.message
        return render(request, "routing/queue.html", context, status=exc.status)
    now = timezone.now()
    items = dashboard.queue_open_items(
        queue=queue, filters=filters, now=now, bucket=bucket, sla=sla
    )
    page = Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))
    page_query = request.GET.copy()
    page_query.pop("page", None)
    context.update(
        {
            "filters": filters,
            "page": page,
            "rows": dashboard.item_rows(list(page.object_list), now),
            "page_query": page_query.urlencode(),
            "reviewers": get_user_model()
            .objects.filter(reviewer_profile__isnull=False, is_active=True)
            .order_by("username"),
            "other_queues": Queue.objects.exclude(pk=queue.pk).order_by("title"),
        }
    )
    return render(request, "routing/queue.html", context, status=status)


@require_GET
@managers_only
def queue_items(request: HttpRequest, name: str) -> HttpResponse:
    """Drill-down: the queue's open items, oldest first, 50 a page."""
    return _queue_page(request, get_object_or_404(Queue, name=name))


def _item_ids(request: HttpRequest) -> list[int]:
    try:
        return [int(value) for value in request.POST.getlist("item")]
    except ValueError:
        raise ApplicationError("select items from the list", field="item_ids") from None


def _back(request: HttpRequest, queue: Queue) -> str:
    url = reverse("dashboard:queue", args=[queue.name])
    return f"{url}?{request.GET.urlencode()}" if request.GET else url


@require_POST
@managers_only
def queue_reassign(request: HttpRequest, name: str) -> HttpResponse:
    """Bulk: hand the selected items to a reviewer, or back to their queue (no one)."""
    queue = get_object_or_404(Queue, name=name)
    try:
        to_user = None
        chosen = request.POST.get("to_user", "").strip()
        if chosen:
            reviewers = get_user_model().objects.filter(reviewer_profile__isnull=False)
            to_user = reviewers.filter(pk=chosen).first() if chosen.isdigit() else None
            if to_user is None:
                raise ApplicationError("choose a reviewer from the list", field="to_user")
        moved = services.work_items_reassign(
            item_ids=_item_ids(request),
            to_user=to_user,
            actor=request.user,
            reason=request.POST.get("reason", ""),
        )
    except ApplicationError as exc:
        return _queue_page(
            request, queue, action_problem=exc.message, problem_field=exc.field, status=exc.status
        )
    target = to_user.get_username() if to_user else "their queue"
    messages.success(request, f"Reassigned {moved} item{'s' if moved != 1 else ''} to {target}.")
    return redirect(_back(request, queue))


@require_POST
@managers_only
def queue_move(request: HttpRequest, name: str) -> HttpResponse:
    """Bulk: move the selected items to another queue, where they wait unclaimed."""
    queue = get_object_or_404(Queue, name=name)
    try:
        target = Queue.objects.filter(name=request.POST.get("queue", "").strip()).first()
        if target is None:
            raise ApplicationError("choose the queue to move the items to", field="queue")
        moved = services.work_items_move(
            item_ids=_item_ids(request),
            queue=target,
            actor=request.user,
            reason=request.POST.get("reason", ""),
        )
    except ApplicationError as exc:
        return _queue_page(
            request, queue, action_problem=exc.message, problem_field=exc.field, status=exc.status
        )
    messages.success(request, f"Moved {moved} item{'s' if moved != 1 else ''} to {target.title}.")
    return redirect(_back(request, queue))
