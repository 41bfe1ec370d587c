"""Flow metrics: how work moves through Arbiter, per queue, workflow or region, per day
or per week, each figure beside the same figure for the period before.

Periods roll back from `now`: with "day" the current period is the last 24 hours, the
previous one the 24 hours before, and the series behind the charts and the CSV is the
last 14 such days; with "week" they are 7-day periods and the series holds 12. Every
figure is computed in SQL (grouped, conditional aggregates; percentiles with
percentile_cont on PostgreSQL and a window-function fallback elsewhere), so the page
costs the same ten queries for two groups or two hundred.

Definitions, for a period [start, end):

- lead time: `finished_at - created_at` of cases finished in the period; median, p90.
- queue time: `claimed_at - enqueued_at` of work items claimed in the period (the
  latest claim the item records); median, p90.
- handle time: `decided_at - claimed_at` of items done (decided) in the period; median, p90.
- cases finished: cases with `finished_at` in the period (any final status).
- items decided: work items in state done with `decided_at` in the period.
- first-pass yield: cases finished in the period with no `return` decision, no work
  item reassigned (`reassignment_count > 0`) and no checker decision disagreeing with
  its maker, divided by the cases finished in the period.
- reassignments: the sum of `reassignment_count` over items closed in the period.
- SLA breaches: items whose `breached_at` falls in the period.
- four-eyes agreement: checker decisions made in the period with
  `agrees_with_maker = true`, divided by all checker decisions made in it.
- backlog and backlog aging: items open at the end of the period (enqueued by then,
  not yet decided), counted by how long they had waited then.
- QA disagreement (per workflow and threshold cell, whatever the grouping): QA
  findings recorded in the period with `agrees = false`, divided by all findings.

Percentiles interpolate linearly between the two nearest values (percentile_cont's
definition): position h = 1 + p * (n - 1) in the ordered values.

Groups: an item belongs to its queue, its case's workflow and its own region; a
decision to its item's; a case to its workflow and region, and to the queue of its
last work item (cases no person touched fall under "no queue").
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from django.db import connection
from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models import Case as SqlCase
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone

from config.errors import ApplicationError
from orchestration.models import Case, QaFinding
from review.models import Decision, DecisionRole, Verdict
from routing.dashboard import Bucket, age_buckets, short_duration
from routing.models import OPEN_STATES, ItemState, WorkItem

FRACTIONS = (0.5, 0.9)  # the percentiles every duration is reported at
MINUS = "\N{MINUS SIGN}"
# A change reads as one unit: "+8 (+100 %)" never breaks across lines in a narrow cell.
NBSP = "\N{NO-BREAK SPACE}"
NO_GROUP = {"queue": "(no queue)", "workflow": "(no workflow)", "region": "(no region)"}


# Parameters -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    key: str
    label: str
    length: dt.timedelta
    points: int  # periods in the series behind the charts and the CSV

    @property
    def noun(self) -> str:
        return "24 hours" if self.key == "day" else "7 days"


PERIODS = {
    "day": Period("day", "Day", dt.timedelta(days=1), 14),
    "week": Period("week", "Week", dt.timedelta(days=7), 12),
}
GROUPS = {"queue": "Queue", "workflow": "Workflow", "region": "Region"}


@dataclass(frozen=True)
class FlowParams:
    """What the report covers: grouped by `group`, in periods of `period` up to `now`."""

    group: str
    period: Period
    now: dt.datetime

    @property
    def buckets(self) -> list[tuple[dt.datetime, dt.datetime]]:
        """[start, end) of each period of the series; index 0 is the current one."""
        length = self.period.length
        return [
            (self.now - (k + 1) * length, self.now - k * length) for k in range(self.period.points)
        ]

    @property
    def start(self) -> dt.datetime:
        return self.now - self.period.points * self.period.length

    def querystring(self) -> str:
        return f"group={self.group}&period={self.period.key}"


def _choice(params: Mapping[str, str], name: str, choices: Iterable[str], default: str) -> str:
    value = (params.get(name) or "").strip() or default
    if value not in choices:
        raise ApplicationError(
            f"{name} must be one of {', '.join(choices)} (got {value[:80]!r})", field=name
        )
    return value


def params_from(query: Mapping[str, str], *, now: dt.datetime) -> FlowParams:
    """The report a request asks for; a value outside the choices raises ApplicationError."""
    group = _choice(query, "group", GROUPS, "queue")
    period = _choice(query, "period", PERIODS, "day")
    return FlowParams(group=group, period=PERIODS[period], now=now)


# Values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ratio:
    """A share with its parts, so totals add parts and never average shares."""

    part: int = 0
    whole: int = 0

    @property
    def value(self) -> float | None:
        return self.part / self.whole if self.whole else None

    def __add__(self, other: Ratio) -> Ratio:
        return Ratio(self.part + other.part, self.whole + other.whole)


Unit = Literal["count", "duration", "ratio"]
FigureValue = int | dt.timedelta | Ratio | None


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: Unit
    higher_is_better: bool | None = None


DURATION_METRICS = (
    Metric("lead_time_p50", "Lead time, median", "duration", False),
    Metric("lead_time_p90", "Lead time, p90", "duration", False),
    Metric("queue_time_p50", "Queue time, median", "duration", False),
    Metric("queue_time_p90", "Queue time, p90", "duration", False),
    Metric("handle_time_p50", "Handle time, median", "duration", False),
    Metric("handle_time_p90", "Handle time, p90", "duration", False),
)
COUNT_METRICS = (
    Metric("cases_finished", "Cases finished", "count", True),
    Metric("items_decided", "Items decided", "count", True),
    Metric("first_pass_yield", "First-pass yield", "ratio", True),
    Metric("reassignments", "Reassignments", "count", False),
    Metric("breaches", "SLA breaches", "count", False),
    Metric("checker_agreement", "Four-eyes agreement", "ratio", True),
    Metric("backlog", "Open items at the end", "count", False),
)
METRICS = DURATION_METRICS + COUNT_METRICS
QA_METRIC = Metric("qa_disagreement", "QA disagreement", "ratio", False)


def age_metrics(buckets: Sequence[Bucket]) -> list[Metric]:
    return [Metric(f"backlog_age_{b.key}", f"Open {b.label}", "count") for b in buckets]


def metric_by_key(key: str, buckets: Sequence[Bucket]) -> Metric:
    for metric in (*METRICS, *age_metrics(buckets), QA_METRIC):
        if metric.key == key:
            return metric
    raise KeyError(key)


Figures = dict[str, list[FigureValue]]  # metric key -> value per period, index 0 current


def _empty(points: int, buckets: Sequence[Bucket]) -> Figures:
    figures: Figures = {}
    for metric in (*METRICS, *age_metrics(buckets)):
        if metric.unit == "ratio":
            figures[metric.key] = [Ratio() for _ in range(points)]
        elif metric.unit == "count":
            figures[metric.key] = [0] * points
        else:
            figures[metric.key] = [None] * points
    return figures


# Percentiles ----------------------------------------------------------------------------


class Percentile(Aggregate):
    """PostgreSQL's continuous percentile (percentile_cont) of an interval."""

    function = "PERCENTILE_CONT"
    name = "Percentile"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DurationField()

    def __init__(self, expression: Any, *, fraction: float, **extra: Any) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError(f"a percentile lies between 0 and 1, not {fraction!r}")
        # A float we chose, written as an SQL literal: never user input.
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


def interpolate(values: Mapping[int, dt.timedelta], size: int, fraction: float) -> dt.timedelta:
    """percentile_cont from the values at the 1-based positions around 1 + p(n - 1)."""
    h = 1 + Fraction(str(fraction)) * (size - 1)
    low, high = math.floor(h), math.ceil(h)
    below = values[low]
    above = values.get(high, below)
    return below + (above - below) * float(h - low)


Key = tuple[Any, ...]


def percentiles(
    rows: QuerySet[Any], *, value: Any, keys: Mapping[str, Any]
) -> dict[Key, tuple[dt.timedelta, ...]]:
    """Per group of `keys` (name -> expression), the FRACTIONS percentiles of `value`.

    PostgreSQL computes percentile_cont per group. Elsewhere (SQLite) a window
    function numbers each group's values in order and only the one or two rows around
    each percentile's position come back; they are interpolated here. One query.
    """
    names = list(keys)
    if connection.vendor == "postgresql":
        grouped = (
            rows.values(**keys)
            .annotate(**{f"p{i}": Percentile(value, fraction=f) for i, f in enumerate(FRACTIONS)})
            .order_by()
        )
        return {
            tuple(row[n] for n in names): tuple(row[f"p{i}"] for i in range(len(FRACTIONS)))
            for row in grouped
        }
    partition = [F(name) for name in names]
    numbered = rows.annotate(**keys, pct_value=value).annotate(
        pct_position=Window(RowNumber(), partition_by=partition, order_by=[F("pct_value").asc()]),
        pct_size=Window(Count("id"), partition_by=partition),
    )
    near = Q()
    for fraction in FRACTIONS:
        low = ExpressionWrapper((F("pct_size") - 1) * Value(fraction), output_field=FloatField())
        near |= Q(pct_position__gt=low, pct_position__lt=low + 2)
    found: dict[Key, dict[int, dt.timedelta]] = defaultdict(dict)
    sizes: dict[Key, int] = {}
    for *key, position, size, duration in numbered.filter(near).values_list(
        *names, "pct_position", "pct_size", "pct_value"
    ):
        found[tuple(key)][position] = duration
        sizes[tuple(key)] = size
    return {key: tuple(interpolate(found[key], sizes[key], f) for f in FRACTIONS) for key in found}


# The report -----------------------------------------------------------------------------


def _bucket(params: FlowParams, name: str) -> SqlCase:
    """The index of the period a timestamp falls in (rows are filtered to the series)."""
    return SqlCase(
        *[
            When(**{f"{name}__gte": start}, then=Value(k))
            for k, (start, _) in enumerate(params.buckets)
        ],
        output_field=IntegerField(),
    )


def _in(name: str, start: dt.datetime, end: dt.datetime) -> Q:
    return Q(**{f"{name}__gte": start, f"{name}__lt": end})


def _open_at(moment: dt.datetime) -> Q:
    """Items open at `moment`: enqueued by then and not decided before it. An item
    cancelled without a decision time counts as gone (the model keeps no other time)."""
    still_open = Q(decided_at__isnull=True) & ~Q(state=ItemState.CANCELLED)
    return Q(enqueued_at__lte=moment) & (still_open | Q(decided_at__gt=moment))


def _last_queue() -> Subquery:
    latest = WorkItem.objects.filter(case=OuterRef("pk")).order_by("-enqueued_at", "-id")
    return Subquery(latest.values("queue__name")[:1])


GROUP_FIELDS: dict[str, dict[str, Callable[[], Any]]] = {
    "item": {
        "queue": lambda: F("queue__name"),
        "workflow": lambda: F("case__workflow__slug"),
        "region": lambda: F("region"),
    },
    "decision": {
        "queue": lambda: F("work_item__queue__name"),
        "workflow": lambda: F("case__workflow__slug"),
        "region": lambda: F("work_item__region"),
    },
    "case": {
        "queue": _last_queue,
        "workflow": lambda: F("workflow__slug"),
        "region": lambda: F("region"),
    },
}


def _group(params: FlowParams, source: str) -> Any:
    return GROUP_FIELDS[source][params.group]()


@dataclass(frozen=True)
class QaRow:
    workflow: str
    cell: str
    values: list[Ratio]  # per period, index 0 current


@dataclass
class FlowReport:
    params: FlowParams
    ages: list[Bucket]
    totals: Figures
    groups: dict[str, Figures] = field(default_factory=dict)
    qa: list[QaRow] = field(default_factory=list)

    @property
    def group_names(self) -> list[str]:
        return sorted(self.groups, key=lambda name: (name == NO_GROUP[self.params.group], name))

    @property
    def metrics(self) -> list[Metric]:
        return [*METRICS, *age_metrics(self.ages)]


def _group_name(params: FlowParams, value: Any) -> str:
    return str(value) if value not in (None, "") else NO_GROUP[params.group]


def flow_report(params: FlowParams) -> FlowReport:
    """Every figure of every group and of all groups, for every period of the series."""
    ages = age_buckets()
    points = params.period.points
    report = FlowReport(params=params, ages=ages, totals=_empty(points, ages))

    def figures(group: Any) -> Figures:
        name = _group_name(params, group)
        if name not in report.groups:
            report.groups[name] = _empty(points, ages)
        return report.groups[name]

    def add(group: Any, key: str, k: int, value: int | Ratio) -> None:
        for target in (figures(group), report.totals):
            current = target[key][k]
            target[key][k] = current + value  # type: ignore[operator]

    for row in _item_counts(params, ages):
        for k in range(points):
            add(row["grp"], "items_decided", k, row[f"decided_{k}"])
            add(row["grp"], "reassignments", k, row[f"reassigned_{k}"])
            add(row["grp"], "breaches", k, row[f"breaches_{k}"])
            add(row["grp"], "backlog", k, row[f"backlog_{k}"])
            for i, bucket in enumerate(ages):
                add(row["grp"], f"backlog_age_{bucket.key}", k, row[f"age{i}_{k}"])
    for row in _checker_counts(params):
        add(row["grp"], "checker_agreement", row["bkt"], Ratio(row["agreements"], row["checks"]))
    for row in _case_counts(params):
        add(row["grp"], "cases_finished", row["bkt"], row["finished"])
        add(row["grp"], "first_pass_yield", row["bkt"], Ratio(row["first_pass"], row["finished"]))
    for source in _duration_sources(params):
        by_group = percentiles(
            source.rows,
            value=source.value,
            keys={"bkt": _bucket(params, source.timestamp), "grp": _group(params, source.group)},
        )
        for (k, group), values in by_group.items():
            for fraction, result in zip(FRACTIONS, values, strict=True):
                figures(group)[source.key(fraction)][k] = result
        overall = percentiles(
            source.rows, value=source.value, keys={"bkt": _bucket(params, source.timestamp)}
        )
        for (k,), values in overall.items():
            for fraction, result in zip(FRACTIONS, values, strict=True):
                report.totals[source.key(fraction)][k] = result
    report.qa = _qa_rows(params)
    return report


def _item_counts(params: FlowParams, ages: Sequence[Bucket]) -> QuerySet[Any]:
    """Per group: decided, reassigned, breached and open items (by age) per period."""
    annotations: dict[str, Any] = {}
    for k, (start, end) in enumerate(params.buckets):
        closed = _in("decided_at", start, end)
        open_ = _open_at(end)
        annotations[f"decided_{k}"] = Count("id", filter=closed & Q(state=ItemState.DONE))
        annotations[f"reassigned_{k}"] = Coalesce(Sum("reassignment_count", filter=closed), 0)
        annotations[f"breaches_{k}"] = Count("id", filter=_in("breached_at", start, end))
        annotations[f"backlog_{k}"] = Count("id", filter=open_)
        for i, bucket in enumerate(ages):
            annotations[f"age{i}_{k}"] = Count("id", filter=open_ & bucket.q(end))
    # Open now, or closed within the series: every row a figure can need (an item
    # breached or open within the series was open then, and a closed item always
    # carries decided_at). Both halves have an index: the open items' and decided_at.
    touched = Q(state__in=OPEN_STATES) | Q(decided_at__gte=params.start)
    return (
        WorkItem.objects.filter(touched)
        .values(grp=_group(params, "item"))
        .annotate(**annotations)
        .order_by()
    )


def _checker_counts(params: FlowParams) -> QuerySet[Any]:
    return (
        Decision.objects.filter(
            _in("created_at", params.start, params.now),
            role=DecisionRole.CHECKER,
            agrees_with_maker__isnull=False,
        )
        .values(bkt=_bucket(params, "created_at"), grp=_group(params, "decision"))
        .annotate(checks=Count("id"), agreements=Count("id", filter=Q(agrees_with_maker=True)))
        .order_by()
    )


def first_pass() -> Q:
    """A case went through on the first pass: nothing returned, reassigned or disputed."""
    returned = Decision.objects.filter(case=OuterRef("pk"), verdict=Verdict.RETURN)
    reassigned = WorkItem.objects.filter(case=OuterRef("pk"), reassignment_count__gt=0)
    disputed = Decision.objects.filter(
        case=OuterRef("pk"), role=DecisionRole.CHECKER, agrees_with_maker=False
    )
    return Q(~Exists(returned), ~Exists(reassigned), ~Exists(disputed))


def _finished_cases(params: FlowParams) -> QuerySet[Case]:
    return Case.objects.filter(_in("finished_at", params.start, params.now))


def _case_counts(params: FlowParams) -> QuerySet[Any]:
    return (
        _finished_cases(params)
        .values(bkt=_bucket(params, "finished_at"), grp=_group(params, "case"))
        .annotate(finished=Count("id"), first_pass=Count("id", filter=first_pass()))
        .order_by()
    )


@dataclass(frozen=True)
class Durations:
    """The rows of a duration metric, the duration, the timestamp that places a row in
    its period, and the kind of row (for its group)."""

    metric: str
    rows: QuerySet[Any]
    value: Any
    timestamp: str
    group: str

    def key(self, fraction: float) -> str:
        return f"{self.metric}_p{round(fraction * 100)}"


def _duration_sources(params: FlowParams) -> list[Durations]:
    claimed = WorkItem.objects.filter(_in("claimed_at", params.start, params.now))
    handled = WorkItem.objects.filter(
        _in("decided_at", params.start, params.now),
        state=ItemState.DONE,
        claimed_at__isnull=False,
    )
    return [
        Durations(
            "lead_time",
            _finished_cases(params),
            F("finished_at") - F("created_at"),
            "finished_at",
            "case",
        ),
        Durations("queue_time", claimed, F("claimed_at") - F("enqueued_at"), "claimed_at", "item"),
        Durations("handle_time", handled, F("decided_at") - F("claimed_at"), "decided_at", "item"),
    ]


def _qa_rows(params: FlowParams) -> list[QaRow]:
    rows = (
        QaFinding.objects.filter(_in("created_at", params.start, params.now))
        .values(
            bkt=_bucket(params, "created_at"),
            workflow=F("step_run__case__workflow__slug"),
            qa_cell=F("cell"),
        )
        .annotate(total=Count("id"), disagreements=Count("id", filter=Q(agrees=False)))
        .order_by()
    )
    cells: dict[tuple[str, str], list[Ratio]] = {}
    for row in rows:
        values = cells.setdefault(
            (row["workflow"], row["qa_cell"]), [Ratio() for _ in range(params.period.points)]
        )
        values[row["bkt"]] += Ratio(row["disagreements"], row["total"])
    return [QaRow(workflow, cell, values) for (workflow, cell), values in sorted(cells.items())]


# Presentation ---------------------------------------------------------------------------


def as_count(value: FigureValue) -> int:
    return value if isinstance(value, int) else 0


def format_value(metric: Metric, value: FigureValue) -> str:
    """A figure the way a person reads it: 3 h 12 min, 94.1 %, 12; a dash for no data."""
    if metric.unit == "ratio":
        share = value.value if isinstance(value, Ratio) else None
        return "—" if share is None else f"{share * 100:.1f} %"
    if metric.unit == "duration":
        return short_duration(value) if isinstance(value, dt.timedelta) else "—"
    return str(value if value is not None else 0)


def _signed(number: float, text: str) -> str:
    if number > 0:
        return f"+{text}"
    if number < 0:
        return f"{MINUS}{text.lstrip('-')}"
    return f"±{text}"


@dataclass(frozen=True)
class Change:
    """A figure against the previous period: the difference in words, and whether it
    went up, went down or held ("better"/"worse" where the metric has a good side)."""

    text: str
    direction: str  # "up", "down", "same" or "" (nothing to compare)
    verdict: str  # "better", "worse" or ""


def change(metric: Metric, current: FigureValue, previous: FigureValue) -> Change:
    """The difference of a figure against the previous period of equal length."""
    if metric.unit == "ratio":
        now = current.value if isinstance(current, Ratio) else None
        before = previous.value if isinstance(previous, Ratio) else None
        if now is None or before is None:
            return Change("", "", "")
        delta = (now - before) * 100
        text = _signed(round(delta, 1), f"{abs(delta):.1f}{NBSP}pp")
    elif metric.unit == "duration":
        if not isinstance(current, dt.timedelta) or not isinstance(previous, dt.timedelta):
            return Change("", "", "")
        delta_td = current - previous
        delta = delta_td.total_seconds()
        if abs(delta) < 60:
            delta = 0
        words = "0 min" if delta == 0 else short_duration(abs(delta_td))
        text = _signed(delta, words.replace(" ", NBSP))
    else:
        now_count, before_count = as_count(current), as_count(previous)
        delta = now_count - before_count
        text = _signed(delta, str(abs(delta)))
        if before_count:
            share = f"{abs(delta) / before_count * 100:.0f}{NBSP}%"
            text += f"{NBSP}({_signed(delta, share)})"
    direction = "up" if delta > 0 else "down" if delta < 0 else "same"
    verdict = ""
    if direction != "same" and metric.higher_is_better is not None:
        verdict = "better" if (direction == "up") == metric.higher_is_better else "worse"
    return Change(text, direction, verdict)


@dataclass(frozen=True)
class Figure:
    metric: Metric
    current: str
    previous: str
    change: Change


def figure(metric: Metric, values: Sequence[FigureValue]) -> Figure:
    current, previous = values[0], values[1] if len(values) > 1 else None
    return Figure(
        metric=metric,
        current=format_value(metric, current),
        previous=format_value(metric, previous),
        change=change(metric, current, previous),
    )


def period_label(params: FlowParams, k: int) -> str:
    """The end of period k as a short local date, for a chart's axis."""
    _, end = params.buckets[k]
    return timezone.localtime(end).strftime("%d %b")


# CSV ------------------------------------------------------------------------------------

CSV_HEADER = ("period_start", "period_end", "group_by", "group", "metric", "value")
# Spreadsheets run a cell that starts like a formula; regions come from API clients.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(text: str) -> str:
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def csv_value(metric: Metric, value: FigureValue) -> str:
    """Machine-friendly: seconds for durations, a fraction 0..1 for shares."""
    if value is None:
        return ""
    if isinstance(value, Ratio):
        share = value.value
        return "" if share is None else f"{share:.4f}"
    if isinstance(value, dt.timedelta):
        return f"{value.total_seconds():.0f}"
    return str(value)


def csv_metric_key(metric: Metric) -> str:
    return f"{metric.key}_seconds" if metric.unit == "duration" else metric.key


def csv_rows(report: FlowReport) -> Iterable[tuple[str, ...]]:
    """Long format, one figure a row: every period of the series, every group and all."""
    params = report.params
    metrics = report.metrics
    for k in reversed(range(params.period.points)):
        start, end = params.buckets[k]
        bounds = (start.isoformat(), end.isoformat())
        for group_name, figures in (("all", report.totals), *sorted(report.groups.items())):
            for metric in metrics:
                value = figures[metric.key][k]
                yield (
                    *bounds,
                    params.group,
                    csv_safe(group_name),
                    csv_metric_key(metric),
                    csv_value(metric, value),
                )
                if metric.unit == "ratio" and isinstance(value, Ratio):
                    yield (
                        *bounds,
                        params.group,
                        csv_safe(group_name),
                        f"{metric.key}_of",
                        str(value.whole),
                    )
        for row in report.qa:
            ratio = row.values[k]
            if not ratio.whole:
                continue
            label = csv_safe(f"{row.workflow}/{row.cell}")
            yield (*bounds, "cell", label, "qa_disagreement", csv_value(QA_METRIC, ratio))
            yield (*bounds, "cell", label, "qa_disagreement_of", str(ratio.whole))


def csv_text(report: FlowReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(csv_rows(report))
    return buffer.getvalue()
