from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required, permission_required
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET
from django_htmx.middleware import HtmxDetails

from audit import registry, services
from audit.forms import EventSearchForm
from audit.models import AuditAction, AuditEvent
from audit.selectors import EventFilters, event_search

VIEW_AUDIT = "audit.view_auditevent"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@require_GET
@login_required
@permission_required(VIEW_AUDIT, raise_exception=True)
def search(request: HtmxHttpRequest) -> HttpResponse:
    """Audit search by case, actor, action and time range, newest first, keyset-paginated."""
    form = EventSearchForm(request.GET or None)
    events: list[AuditEvent] = []
    next_before: int | None = None
    status = 200
    if form.is_bound and not form.is_valid():
        status = 400
    else:
        data = form.cleaned_data if form.is_bound else {}
        filters = EventFilters(
            case_id=data.get("case_id") or "",
            actor=data.get("actor") or "",
            action=data.get("action") or "",
            since=data.get("since"),
            until=data.get("until"),
        )
        events, next_before = event_search(filters=filters, before_id=data.get("before"))
    query = request.GET.copy()
    query.pop("before", None)
    context = {
        "form": form,
        "events": events,
        "next_before": next_before,
        "base_query": query.urlencode(),
    }
    template = "audit/search.html#results" if request.htmx else "audit/search.html"
    return render(request, template, context, status=status)


def _case_evidence_or_404(case_id: str) -> dict[str, object]:
    sections = registry.evidence_for(case_id)
    if not any(name != "verification" for name in sections):
        raise Http404(f"No case {case_id!r} is known to the audit trail.")
    return sections


@require_GET
@login_required
@permission_required(VIEW_AUDIT, raise_exception=True)
def case_timeline(request: HttpRequest, case_id: str) -> HttpResponse:
    """Everything that happened to one case, from every app, in one ordered view."""
    entries = registry.timeline_for(case_id)
    if not entries:
        raise Http404(f"No case {case_id!r} is known to the audit trail.")
    return render(request, "audit/timeline.html", {"case_id": case_id, "entries": entries})


def _evidence_pack(request: HttpRequest, case_id: str, fmt: str) -> dict[str, object]:
    sections = _case_evidence_or_404(case_id)
    # Exporting evidence is itself on the record, in the global chain so the case's
    # own chain (part of the pack) does not change by being looked at.
    with transaction.atomic():
        services.record(
            actor=request.user,
            action=AuditAction.EVIDENCE_EXPORTED,
            object_type="case",
            object_id=case_id,
            after={"format": fmt},
        )
    return {
        "case_id": case_id,
        "generated_at": timezone.now().isoformat(),
        "generated_by": request.user.get_username(),
        **sections,
    }


@require_GET
@login_required
@permission_required(VIEW_AUDIT, raise_exception=True)
def evidence_json(request: HttpRequest, case_id: str) -> JsonResponse:
    pack = _evidence_pack(request, case_id, "json")
    response = JsonResponse(pack, encoder=DjangoJSONEncoder, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="evidence-{case_id}.json"'
    return response


@require_GET
@login_required
@permission_required(VIEW_AUDIT, raise_exception=True)
def evidence_html(request: HttpRequest, case_id: str) -> HttpResponse:
    pack = _evidence_pack(request, case_id, "html")
    other = {
        name: json.dumps(data, cls=DjangoJSONEncoder, indent=2)
        for name, data in pack.items()
        if name not in {"case_id", "generated_at", "generated_by", "audit_chain", "verification"}
    }
    return render(request, "audit/evidence.html", {"pack": pack, "other_sections": other})
