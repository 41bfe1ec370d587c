"""Admin pages under /settings/: the index and the threshold grid editor."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from config.errors import ApplicationError
from config.htmx import HtmxHttpRequest
from orchestration import selectors, services
from orchestration.dmn import DmnError, grid_from_dmn, grid_to_dmn
from orchestration.models import ThresholdPolicy, Workflow
from orchestration.thresholds import ACTIONS, IMPACTS, Grid, InvalidGrid, build_grid

EDIT = "orchestration.add_thresholdpolicy"
PREVIEW_DAYS = 30


def _admin(view: Any) -> Any:
    """Admins only: signed in (else to sign-in), and allowed to edit grids (else 403)."""
    return login_required(permission_required(EDIT, raise_exception=True)(view))


@require_GET
@_admin
def settings_index(request: HttpRequest) -> HttpResponse:
    return render(request, "orchestration/settings_index.html")


def _scope(request: HttpRequest) -> tuple[list[str], str, str, list[str]]:
    source = request.POST if request.method == "POST" else request.GET
    slugs = sorted(set(Workflow.objects.filter(published=True).values_list("slug", flat=True)))
    slug = source.get("workflow") or (slugs[0] if slugs else "")
    if slug and slug not in slugs:
        slug = slugs[0] if slugs else ""
    step = source.get("step", "")
    steps: list[str] = []
    newest = Workflow.objects.filter(slug=slug, published=True).order_by("-version").first()
    if newest is not None:
        steps = [s.id for s in services.definition_of(newest).steps.values() if s.kind == "review"]
    if step not in steps:
        step = ""
    return slugs, slug, step, steps


def _grid_from_post(data: Any) -> tuple[dict[str, Any], Grid | None, list[str]]:
    """The edited grid as submitted, the validated Grid (or None), and its problems."""
    raw_edges = [e.strip() for e in data.get("edges", "").split(",") if e.strip()]
    bands = len(raw_edges) + 1
    cells = {i: [data.get(f"cell_{i}_{b}", "review") for b in range(bands)] for i in IMPACTS}
    rates = {i: [data.get(f"rate_{i}_{b}", "0") or "0" for b in range(bands)] for i in IMPACTS}
    submitted = {
        "edges": raw_edges,
        "cells": cells,
        "sample_rates": rates,
        "critical_auto_override": data.get("critical_auto_override") == "on",
        "override_reason": data.get("override_reason", ""),
    }
    try:
        grid = build_grid(
            edges=raw_edges,
            cells=cells,
            sample_rates=rates,
            allow_critical_auto=submitted["critical_auto_override"],
            override_reason=submitted["override_reason"],
        )
    except InvalidGrid as exc:
        return submitted, None, exc.problems
    return submitted, grid, []


def _rows(grid_values: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for impact in IMPACTS:
        cells = grid_values["cells"][impact]
        rates = grid_values["sample_rates"][impact]
        rows.append(
            {
                "impact": impact,
                "cells": [{"band": b, "action": a, "rate": rates[b]} for b, a in enumerate(cells)],
            }
        )
    return rows


def _band_labels(edges: list[Any]) -> list[str]:
    values = ["0", *[str(e) for e in edges], "1"]
    return [
        f"[{values[i]}, {values[i + 1]}{']' if i == len(edges) else ')'}"
        for i in range(len(edges) + 1)
    ]


def _context(
    request: HttpRequest,
    slug: str,
    step: str,
    values: dict[str, Any],
    problems: list[str],
    grid: Grid | None,
) -> dict[str, Any]:
    slugs, _, _, steps = _scope(request)
    since = timezone.now() - dt.timedelta(days=PREVIEW_DAYS)
    preview = (
        selectors.gate_preview(selectors.gate_decisions_since(slug, since, step), grid)
        if grid
        else None
    )
    versions = ThresholdPolicy.objects.filter(workflow_slug=slug, step_id=step).select_related(
        "created_by"
    )
    return {
        "workflows": slugs,
        "workflow": slug,
        "steps": steps,
        "step": step,
        "values": values,
        "edges_text": ", ".join(str(e) for e in values["edges"]),
        "rows": _rows(values),
        "band_labels": _band_labels(values["edges"]),
        "actions": ACTIONS,
        "problems": problems,
        "preview": preview,
        "preview_days": PREVIEW_DAYS,
        "versions": versions,
        "calibration": selectors.calibration_report(slug) if slug else [],
    }


def _grid_of(values: dict[str, Any]) -> Grid:
    return build_grid(
        edges=values["edges"],
        cells=values["cells"],
        sample_rates=values["sample_rates"],
        allow_critical_auto=values["critical_auto_override"],
        override_reason=values["override_reason"],
    )


def _current_values(slug: str, step: str) -> dict[str, Any]:
    policy = (
        ThresholdPolicy.objects.filter(workflow_slug=slug, step_id=step)
        .order_by("-version")
        .first()
    )
    grid = (
        services.policy_grid(policy)
        if policy
        else services.policy_grid(services.policy_for(slug, step))
    )
    values = grid.as_dict()
    values["critical_auto_override"] = bool(policy and policy.critical_auto_override)
    values["override_reason"] = policy.override_reason if policy else ""
    return values


@require_http_methods(["GET", "POST"])
@_admin
def thresholds(request: HtmxHttpRequest) -> HttpResponse:
    """The grid editor: one control per cell, versions, preview, calibration."""
    _, slug, step, _ = _scope(request)
    if request.method == "GET":
        values = _current_values(slug, step)
        context = _context(request, slug, step, values, [], _grid_of(values))
        return render(request, "orchestration/thresholds.html", context)
    values, edited, problems = _grid_from_post(request.POST)
    grid = edited
    reason = request.POST.get("reason", "").strip()
    if not reason:
        problems = [*problems, "say why the grid changes (the reason is kept with the version)"]
    if problems or grid is None:
        context = _context(request, slug, step, values, problems, grid)
        return render(request, "orchestration/thresholds.html", context, status=400)
    try:
        policy = services.threshold_policy_save(
            workflow_slug=slug,
            step_id=step,
            edges=list(grid.edges),
            cells={k: list(v) for k, v in grid.cells.items()},
            sample_rates={k: list(v) for k, v in grid.sample_rates.items()},
            reason=reason,
            actor=request.user,
            critical_auto_override=values["critical_auto_override"],
            override_reason=values["override_reason"],
        )
    except (ApplicationError, InvalidGrid) as exc:
        problems = exc.problems if isinstance(exc, InvalidGrid) else [exc.message]
        return render(
            request,
            "orchestration/thresholds.html",
            _context(request, slug, step, values, problems, grid),
            status=400,
        )
    messages.success(request, f"Saved {policy}.")
    return redirect(f"{reverse('settings:thresholds')}?workflow={slug}&step={step}")


@require_POST
@_admin
def thresholds_preview(request: HtmxHttpRequest) -> HttpResponse:
    """htmx: re-render the editor with the preview of the edited grid (nothing saved)."""
    _, slug, step, _ = _scope(request)
    values, grid, problems = _grid_from_post(request.POST)
    context = _context(request, slug, step, values, problems, grid)
    context["reason"] = request.POST.get("reason", "")
    return render(request, "orchestration/thresholds.html#editor", context)


@require_GET
@_admin
def thresholds_diff(request: HttpRequest) -> HttpResponse:
    _, slug, step, _ = _scope(request)
    versions = ThresholdPolicy.objects.filter(workflow_slug=slug, step_id=step)
    try:
        a = versions.get(version=int(request.GET.get("a", "")))
        b = versions.get(version=int(request.GET.get("b", "")))
    except (ValueError, ThresholdPolicy.DoesNotExist):
        messages.error(request, "Pick two existing versions to compare.")
        return redirect(f"{reverse('settings:thresholds')}?workflow={slug}&step={step}")
    diff = selectors.grid_diff(services.policy_grid(a), services.policy_grid(b))
    return render(request, "orchestration/thresholds_diff.html", {"a": a, "b": b, "diff": diff})


@require_GET
@_admin
def thresholds_export(request: HttpRequest) -> HttpResponse:
    _, slug, step, _ = _scope(request)
    values = _current_values(slug, step)
    xml = grid_to_dmn(
        _grid_of(values),
        name=f"{slug}{'/' + step if step else ''} review gate",
        critical_auto_override=values["critical_auto_override"],
        override_reason=values["override_reason"],
    )
    response = HttpResponse(xml, content_type="application/xml")
    response["Content-Disposition"] = (
        f'attachment; filename="{slug}{"-" + step if step else ""}-gate.dmn"'
    )
    return response


@require_POST
@_admin
def thresholds_import(request: HttpRequest) -> HttpResponse:
    """Load a DMN decision table into the editor; it is saved only with a reason."""
    _, slug, step, _ = _scope(request)
    upload = request.FILES.get("dmn")
    problems: list[str] = []
    values = _current_values(slug, step)
    grid = None
    if upload is None:
        problems.append("choose a .dmn file to import")
    elif (upload.size or 0) > 1024 * 1024:
        problems.append("the file is larger than 1 MiB")
    else:
        try:
            imported, flags = grid_from_dmn(upload.read().decode("utf-8", errors="replace"))
            values = {**imported, **flags}
            grid = build_grid(
                **imported,
                allow_critical_auto=flags["critical_auto_override"],
                override_reason=flags["override_reason"],
            )
        except (DmnError, InvalidGrid) as exc:
            problems = exc.problems if isinstance(exc, InvalidGrid) else [str(exc)]
    context = _context(request, slug, step, values, problems, grid)
    if not problems:
        messages.info(request, "Imported: check the grid and its preview, give a reason, and save.")
    return render(
        request, "orchestration/thresholds.html", context, status=400 if problems else 200
    )


@require_GET
@_admin
def reviewed_cases_export(request: HttpRequest) -> StreamingHttpResponse:
    _, slug, _, _ = _scope(request)
    response = StreamingHttpResponse(
        selectors.reviewed_cases_jsonl(slug), content_type="application/x-ndjson"
    )
    response["Content-Disposition"] = f'attachment; filename="{slug}-reviewed-cases.jsonl"'
    return response
