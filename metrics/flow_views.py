"""The flow metrics tab under /dashboard/flow/, for managers and admins: the figures of
all work and of each queue, workflow or region, each beside the previous period's,
server-drawn charts of the series, and the same report as CSV.

Reads go through metrics.flow; nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from accounts.decorators import managers_only
from config.errors import ApplicationError
from config.htmx import HtmxHttpRequest
from metrics import flow, svg
from routing import svg as routing_svg
from routing.dashboard import short_duration

# The columns of the per-group table; the summary and the CSV carry every metric.
TABLE_METRICS = (
    "cases_finished",
    "lead_time_p50",
    "first_pass_yield",
    "items_decided",
    "queue_time_p50",
    "handle_time_p50",
    "breaches",
    "checker_agreement",
    "backlog",
)

View = Callable[..., HttpResponse]


def _hours(value: float) -> str:
    return "0" if value == 0 else short_duration(dt.timedelta(hours=value))


def _hours_axis(value: float) -> str:
    return "0" if value == 0 else f"{value:g} h"


def _as_hours(value: flow.FigureValue) -> float | None:
    return value.total_seconds() / 3600 if isinstance(value, dt.timedelta) else None


def _as_count(value: flow.FigureValue) -> float | None:
    return float(value) if isinstance(value, int) else None


def _charts(report: flow.FlowReport) -> dict[str, Any]:
    params = report.params
    order = list(reversed(range(params.period.points)))  # oldest first
    labels = [flow.period_label(params, k) for k in order]
    every = 2 if params.period.points > 12 else 1
    totals = report.totals

    def series(name: str, key: str, convert: Callable[[flow.FigureValue], float | None]) -> Any:
        return svg.Series(name, [convert(totals[key][k]) for k in order])

    groups = report.group_names
    return {
        "throughput_chart": svg.multi_line(
            chart_id="throughput-chart",
            title=f"Throughput per {params.period.noun}",
            labels=labels,
            series=[
                series("Items decided", "items_decided", _as_count),
                series("Cases finished", "cases_finished", _as_count),
            ],
            label_every=every,
        ),
        "lead_time_chart": svg.multi_line(
            chart_id="lead-time-chart",
            title=f"Lead time per {params.period.noun}, median and p90",
            labels=labels,
            series=[
                series("Median", "lead_time_p50", _as_hours),
                series("p90", "lead_time_p90", _as_hours),
            ],
            fmt=_hours,
            axis_fmt=_hours_axis,
            label_every=every,
        ),
        "wait_chart": svg.multi_line(
            chart_id="wait-chart",
            title=f"Queue and handle time per {params.period.noun}, medians",
            labels=labels,
            series=[
                series("Queue time", "queue_time_p50", _as_hours),
                series("Handle time", "handle_time_p50", _as_hours),
            ],
            fmt=_hours,
            axis_fmt=_hours_axis,
            label_every=every,
        ),
        "aging_chart": routing_svg.stacked_bars(
            chart_id="aging-chart",
            title=f"Open items now per {flow.GROUPS[params.group].lower()}, by age",
            categories=groups,
            series=[b.label for b in report.ages],
            values=[
                [flow.as_count(report.groups[g][f"backlog_age_{b.key}"][0]) for b in report.ages]
                for g in groups
            ],
        ),
    }


def _context(report: flow.FlowReport) -> dict[str, Any]:
    params = report.params
    table = [flow.metric_by_key(key, report.ages) for key in TABLE_METRICS]
    current, previous = params.buckets[0], params.buckets[1]
    return {
        "params": params,
        "report": report,
        "current": current,
        "previous": previous,
        "summary": [flow.figure(m, report.totals[m.key]) for m in report.metrics],
        "table_metrics": table,
        "rows": [
            (name, [flow.figure(m, report.groups[name][m.key]) for m in table])
            for name in report.group_names
        ],
        "qa_rows": [(row, flow.figure(flow.QA_METRIC, row.values)) for row in report.qa],
        **_charts(report),
    }


@require_GET
@managers_only
@vary_on_headers("HX-Request")  # the same URL answers a partial to htmx: keep caches apart
def flow_page(request: HtmxHttpRequest) -> HttpResponse:
    """Flow metrics of the current period against the previous one, with the series."""
    context: dict[str, Any] = {
        "groups": flow.GROUPS,
        "periods": flow.PERIODS,
        "form_values": {name: request.GET.get(name, "")[:80] for name in ("group", "period")},
    }
    try:
        params = flow.params_from(request.GET, now=timezone.now())
    except ApplicationError as exc:
        context["problem"] = exc.message
        return render(request, "metrics/flow.html", context, status=exc.status)
    context.update(_context(flow.flow_report(params)))
    if request.htmx:
        return render(request, "metrics/flow.html#results", context)
    return render(request, "metrics/flow.html", context)


@require_GET
@managers_only
def flow_csv(request: HttpRequest) -> HttpResponse:
    """The report as CSV, one figure a row, for the same grouping and period."""
    try:
        params = flow.params_from(request.GET, now=timezone.now())
    except ApplicationError as exc:
        return HttpResponse(
            exc.message, status=exc.status, content_type="text/plain; charset=utf-8"
        )
    body = flow.csv_text(flow.flow_report(params))
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime(params.now).strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = (
        f'attachment; filename="flow-{params.group}-{params.period.key}-{stamp}.csv"'
    )
    return response
