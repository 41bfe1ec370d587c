"""Aggregate reads of the SLA aging dashboard: per-queue figures, the backlog over the
last day, and one queue's open items.

Every figure is computed in SQL, so the page costs the same few queries whether there
are two queues or two hundred: the window scan (`window_scan`: the items decided in
the last 24 hours counted per queue, and the queues with their open items counted,
their oldest open item and their open items per hour of entry) and the median queue
times. Each reads partial indexes, not the whole table: open items through
`workitem_open_by_queue`, which covers every column the page reads of them, recent
decisions through `workitem_decided` and each queue's recent claims through
`workitem_claimed_by_queue`, both covering. A closed item always carries
`decided_at`, so "open, or decided in the window" reaches every row a figure of the
window needs.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import pairwise
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import (
    Aggregate,
    Case,
    Count,
    DateTimeField,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    TextField,
    Value,
    When,
    Window,
)
from django.db.models.functions import RowNumber

from config.errors import ApplicationError
from routing.models import OPEN_STATES, ItemState, Queue, WorkItem

DEFAULT_AGE_BUCKETS = (1, 4, 24)  # hours; edges between the buckets of open items
WINDOW = dt.timedelta(hours=24)  # throughput, queue time and the backlog line look back this far
BACKLOG_STEP = dt.timedelta(hours=1)
_MICROSECOND = dt.timedelta(microseconds=1)
# Regions and skills are short slugs; anything else is a typo or an attack, not a filter.
FILTER_VALUE = re.compile(r"[A-Za-z0-9_-]{1,64}")
EN_DASH = "\N{EN DASH}"
SLA_STATES = {"breached": "breached", "at_risk": "at risk", "on_time": "on time"}


# Age buckets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    """Open items whose age is in [low, high); None leaves that side open."""

    key: str
    label: str
    low: dt.timedelta | None
    high: dt.timedelta | None

    def q(self, now: dt.datetime) -> Q:
        """The items of this bucket at `now`, as a condition on enqueue time."""
        condition = Q()
        if self.low is not None:
            condition &= Q(enqueued_at__lte=now - self.low)
        if self.high is not None:
            condition &= Q(enqueued_at__gt=now - self.high)
        return condition


def _hours(value: float) -> str:
    return f"{value:g}"


def age_buckets() -> list[Bucket]:
    """The buckets from settings.ARBITER_DASHBOARD_AGE_BUCKETS (edges in hours)."""
    edges = getattr(settings, "ARBITER_DASHBOARD_AGE_BUCKETS", DEFAULT_AGE_BUCKETS)
    try:
        hours = [float(edge) for edge in edges]
    except (TypeError, ValueError):
        raise ImproperlyConfigured(
            f"ARBITER_DASHBOARD_AGE_BUCKETS must be hours, e.g. (1, 4, 24); got {edges!r}"
        ) from None
    if not hours or hours[0] <= 0 or any(b <= a for a, b in pairwise(hours)):
        raise ImproperlyConfigured(
            f"ARBITER_DASHBOARD_AGE_BUCKETS must increase strictly from above 0; got {edges!r}"
        )
    bounds: list[float | None] = [None, *hours, None]
    buckets = []
    for low, high in pairwise(bounds):
        if low is None:
            key, label = f"lt{_hours(high or 0)}", f"< {_hours(high or 0)} h"
        elif high is None:
            key, label = f"gt{_hours(low)}", f"> {_hours(low)} h"
        else:
            key, label = f"{_hours(low)}-{_hours(high)}", f"{_hours(low)}{EN_DASH}{_hours(high)} h"
        buckets.append(
            Bucket(
                key=key,
                label=label,
                low=None if low is None else dt.timedelta(hours=low),
                high=None if high is None else dt.timedelta(hours=high),
            )
        )
    return buckets


# Filters --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """Which items count: by the item's region and a skill it needs; blank: all."""

    region: str = ""
    skill: str = ""

    @property
    def active(self) -> bool:
        return bool(self.region or self.skill)

    def querystring(self) -> str:
        return urlencode({k: v for k, v in (("region", self.region), ("skill", self.skill)) if v})

    def q(self) -> Q:
        condition = Q()
        if self.region:
            condition &= Q(region=self.region)
        if self.skill:
            if connection.vendor == "postgresql":
                condition &= Q(skills__contains=[self.skill])
            else:
                # SQLite has no JSON containment; the stored list is JSON text, so the
                # quoted name matches exactly one element (slugs hold no quotes).
                condition &= Q(skills__icontains=f'"{self.skill}"')
        return condition


def _filter_value(params: Mapping[str, str], name: str) -> str:
    value = (params.get(name) or "").strip()
    if value and not FILTER_VALUE.fullmatch(value):
        raise ApplicationError(
            f"{name} must be a code of up to 64 letters, digits, hyphens or underscores "
            f"(got {value[:80]!r})",
            field=name,
        )
    return value


def filters_from(params: Mapping[str, str]) -> Filters:
    """The filters of a request's query; a malformed value raises ApplicationError.

    An unknown but well-formed value is not an error: it simply matches nothing.
    """
    return Filters(region=_filter_value(params, "region"), skill=_filter_value(params, "skill"))


def bucket_from(params: Mapping[str, str], buckets: Sequence[Bucket]) -> Bucket | None:
    key = (params.get("bucket") or "").strip()
    if not key:
        return None
    for bucket in buckets:
        if bucket.key == key:
            return bucket
    raise ApplicationError(
        f"bucket must be one of {', '.join(b.key for b in buckets)} (got {key[:80]!r})",
        field="bucket",
    )


def sla_from(params: Mapping[str, str]) -> str:
    value = (params.get("sla") or "").strip()
    if value and value not in SLA_STATES:
        raise ApplicationError(
            f"sla must be one of {', '.join(SLA_STATES)} (got {value[:80]!r})", field="sla"
        )
    return value


# Per-queue figures ----------------------------------------------------------------------


def short_duration(value: dt.timedelta | None) -> str:
    """A duration the way a person reads it at a glance: 45 min, 3 h 12 min, 2 d 4 h."""
    if value is None:
        return "—"
    minutes = max(int(value.total_seconds() // 60), 0)
    if minutes < 1:
        return "< 1 min"
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


@dataclass
class QueueFigures:
    queue: Queue
    backlog: int
    buckets: list[tuple[Bucket, int]]  # open items per age bucket, youngest first
    at_risk: int
    breached: int
    wip: int
    throughput: int
    reassignments: int
    oldest_id: int | None
    oldest_age: dt.timedelta | None
    median_wait: dt.timedelta | None = None

    @property
    def bucket_counts(self) -> list[int]:
        return [count for _, count in self.buckets]

    @property
    def wip_full(self) -> bool:
        """At or over the queue's WIP limit (0 means no limit)."""
        return bool(self.queue.wip_limit) and self.wip >= self.queue.wip_limit

    @property
    def oldest_age_text(self) -> str:
        return short_duration(self.oldest_age)

    @property
    def median_wait_text(self) -> str:
        return short_duration(self.median_wait)


@dataclass
class Totals:
    backlog: int
    buckets: list[tuple[Bucket, int]]
    at_risk: int
    breached: int
    wip: int
    throughput: int
    reassignments: int


# The epoch as PostgreSQL's `timestamp` (no time zone): adding an interval to it counts
# a day as 24 hours whatever the session's time zone, so it maps a wait to a
# `timestamp` one to one and in order.
_EPOCH = dt.datetime(1970, 1, 1)  # noqa: DTZ001 (a `timestamp`, naive by definition)
# percentile_disc(p) is the value at row ceil(p * n) of the sorted n: at 0.5 the lower
# middle row, a hair above 0.5 the upper one (the same row when n is odd). Exact for any
# n below 10^11.
_MIDDLE_FRACTIONS = "ARRAY[0.5, 0.500000000001]"


class MiddleWaits(Aggregate):
    """PostgreSQL: the middle one or two of the waits (claimed_at - enqueued_at), each
    as `'epoch'::timestamp + wait`, from one sort. Sorting an `interval` (16 bytes,
    passed by reference) cost about twice as much as sorting that `timestamp` (8
    bytes, by value). `median_from_middle` turns the pair into the median."""

    function = "PERCENTILE_DISC"
    name = "MiddleWaits"
    template = (
        f"%(function)s({_MIDDLE_FRACTIONS}) WITHIN GROUP "
        "(ORDER BY 'epoch'::timestamp + (%(expressions)s))"
    )
    output_field = ArrayField(DateTimeField())


def _mean_of_middle(waits: Sequence[dt.timedelta]) -> dt.timedelta:
    """The median from the middle one or two waits: their mean, rounded half to even to
    the microsecond, on every database. (percentile_cont rounds half the difference
    instead, low + (high - low) / 2, which can land a microsecond away.)"""
    return sum(waits, dt.timedelta()) / len(waits)


def median_from_middle(middle: Sequence[dt.datetime]) -> dt.timedelta:
    """The median from `MiddleWaits`' pair of `'epoch'::timestamp + wait` values."""
    return _mean_of_middle([value - _EPOCH for value in middle])


def _window_rows(now: dt.datetime) -> Q:
    """Rows any figure of the window needs: open, or decided within it."""
    return Q(state__in=OPEN_STATES) | Q(decided_at__gte=now - WINDOW)


def backlog_points(now: dt.datetime) -> list[dt.datetime]:
    """The backlog line's times: every BACKLOG_STEP over the last WINDOW, ending at now."""
    start = now - WINDOW
    return [start + BACKLOG_STEP * k for k in range(int(WINDOW / BACKLOG_STEP) + 1)]


class _PointsBefore(Func):
    """How many of the thresholds are at or before the time (PostgreSQL's
    width_bucket over an array, a binary search); NULL gives `last`."""

    template = "COALESCE(WIDTH_BUCKET(%(expressions)s), %(last)s)"
    output_field = IntegerField()

    def __init__(self, field: str, thresholds: Sequence[dt.datetime], *, last: int) -> None:
        array = Func(
            *[Value(t) for t in thresholds],
            function="ARRAY",
            template="ARRAY[%(expressions)s]",
            output_field=DateTimeField(),
        )
        super().__init__(F(field), array, last=last)


def _first_point_reached(field: str, points: Sequence[dt.datetime]) -> Any:
    """The index of the first point at or after the row's `field` time (from there on
    the item counts as enqueued, or, for `decided_at`, no longer counts); len(points)
    when there is none: NULL, or later than the last point.

    That index is the number of points strictly before the time. PostgreSQL counts it
    with width_bucket, which counts thresholds at or before its operand, given every
    point one microsecond later: times are whole microseconds, so p < t exactly when
    p + 1 µs <= t. (It replaced seconds-since-start arithmetic: date_part on an
    interval goes through numeric, and cost 6 ms per 31,000 rows, width_bucket 1.5.)
    Elsewhere a CASE compares with every point.
    """
    last = len(points)
    if connection.vendor == "postgresql":
        return _PointsBefore(field, [t + _MICROSECOND for t in points], last=last)
    return Case(
        *[When(**{f"{field}__lte": t}, then=Value(k)) for k, t in enumerate(points)],
        default=Value(last),
        output_field=IntegerField(),
    )


# The open items' figures of a queue, in the order of its counts column; the age
# buckets follow as bucket_0, bucket_1, ...
OPEN_FIGURES = ("items", "at_risk", "breached", "wip", "reassignments", "entered_by_start")


def open_figure_names(buckets: Sequence[Bucket]) -> tuple[str, ...]:
    return (*OPEN_FIGURES, *(f"bucket_{index}" for index in range(len(buckets))))


class _Counts(Func):
    """Several aggregates side by side in one column: an array of integers on
    PostgreSQL (ARRAY[...] takes any number of them), a JSON array elsewhere."""

    function = "JSON_ARRAY"
    output_field = TextField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return self.as_sql(compiler, connection, template="ARRAY[%(expressions)s]", **extra_context)


def _count_list(value: Any) -> list[int]:
    """A `_Counts` column as read: a list (PostgreSQL), JSON text (SQLite) or NULL (a
    queue without matching open items)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [int(n or 0) for n in json.loads(value)]
    return [int(n or 0) for n in value]


@dataclass
class WindowScan:
    """The window's items counted two ways in two queries, enough for every per-queue
    count of the page and for the backlog line.

    `queues`: every queue with
    - its open items counted every way the page shows them (`open_counts`, in the
      order of `open_names`): one correlated subquery per queue, an index-only range
      scan of that queue's part of `workitem_open_by_queue`. (It replaced a GROUP BY
      over all open items, for which PostgreSQL preferred a heap scan through the
      smaller `workitem_escalate_due`, or launched parallel workers costing more to
      start than they saved: 18 ms for 50,000 open items, now 8.)
    - its oldest open item;
    - per backlog point after the first, how many of its open items entered since the
      point before: one index-only range count of `workitem_open_by_queue` each, over
      the last day's entries only, no expression computed per row. The items that
      entered by the first point are among the open counts (`entered_by_start`).
    An item gets its decision time on its way to done or cancelled, never while open,
    so an open item counts from the point it entered to the last.

    `rows`: the items decided in the window grouped per queue and per pair of backlog
    points between which each entered and left (index-only through
    `workitem_decided`), instead of a bitmap scan of the table for "open OR decided"
    per figure.
    """

    points: list[dt.datetime]
    rows: list[dict[str, Any]]
    queues: list[Queue]
    open_names: tuple[str, ...]

    @cached_property
    def open_figures(self) -> dict[int, dict[str, int]]:
        """Each queue's `open_counts` column by name, per queue id (read once)."""
        zeros = [0] * len(self.open_names)
        return {
            queue.pk: dict(
                zip(
                    self.open_names,
                    _count_list(getattr(queue, "open_counts", None)) or zeros,
                    strict=True,
                )
            )
            for queue in self.queues
        }

    def per_queue(self) -> dict[int, dict[str, int]]:
        sums: dict[int, dict[str, int]] = {}
        for queue_id, figures in self.open_figures.items():
            counts = dict(figures)
            del counts["entered_by_start"]  # a figure of the backlog line, not of a queue
            sums[queue_id] = defaultdict(int, counts, backlog=counts["items"])
        for row in self.rows:
            into = sums.setdefault(row["queue_id"], defaultdict(int))
            for key in ("items", "throughput", "reassignments"):
                into[key] += row[key] or 0
        return sums

    def backlog(self) -> list[tuple[dt.datetime, int]]:
        """Open items at each point: those that entered by it and had not left."""
        last = len(self.points)
        counts = [0] * last
        for row in self.rows:
            for k in range(row["entered"], min(row["left"], last)):
                counts[k] += row["items"]
        running = sum(figures["entered_by_start"] for figures in self.open_figures.values())
        counts[0] += running
        for k in range(1, last):
            running += sum(getattr(queue, f"entered_{k}") or 0 for queue in self.queues)
            counts[k] += running
        return list(zip(self.points, counts, strict=True))


def _counted(items: QuerySet[WorkItem]) -> Subquery:
    """COUNT(*) of `items` as a subquery (NULL when none)."""
    return Subquery(
        items.order_by().values("queue").annotate(n=Count("queue")).values("n")[:1],
        output_field=IntegerField(),
    )


def _open_counts(
    of_queue: QuerySet[WorkItem], *, now: dt.datetime, first: dt.datetime, buckets: Sequence[Bucket]
) -> Subquery:
    """The queue's open items counted every way the page shows them, in the order of
    open_figure_names, in one pass. Every column read is in `workitem_open_by_queue`
    (hence COUNT(queue_id), not COUNT(id))."""

    def count(condition: Q | None = None) -> Count:
        return Count("queue_id", filter=condition)

    figures: dict[str, Any] = {
        "items": count(),
        "at_risk": count(Q(warned_at__isnull=False, breached_at__isnull=True)),
        "breached": count(Q(breached_at__isnull=False)),
        "wip": count(Q(state=ItemState.CLAIMED)),
        "reassignments": Sum("reassignment_count"),
        "entered_by_start": count(Q(enqueued_at__lte=first)),
    }
    for index, bucket in enumerate(buckets):
        figures[f"bucket_{index}"] = count(bucket.q(now))
    counts = _Counts(*(figures[name] for name in open_figure_names(buckets)))
    return Subquery(
        of_queue.order_by().values("queue").annotate(counts=counts).values("counts")[:1],
        output_field=TextField(),
    )


def _scan_querysets(
    *, filters: Filters, now: dt.datetime, buckets: Sequence[Bucket]
) -> tuple[QuerySet[Any], QuerySet[Queue]]:
    """The window scan's two statements as querysets: the decided rows, the queues."""
    points = backlog_points(now)
    last = len(points)
    open_ = Q(state__in=OPEN_STATES)
    decided = (
        WorkItem.objects.filter(filters.q(), decided_at__gte=now - WINDOW)
        .exclude(open_)
        .annotate(
            entered=_first_point_reached("enqueued_at", points),
            left=_first_point_reached("decided_at", points),
        )
        .values("queue_id", "entered", "left")
        .annotate(
            items=Count("queue_id"),
            throughput=Count("queue_id", filter=Q(state=ItemState.DONE)),
            reassignments=Sum("reassignment_count"),
        )
        .order_by()
    )

    # Walks the partial index (queue, enqueued_at) of open items: one row per queue.
    of_queue = WorkItem.objects.filter(filters.q(), open_, queue=OuterRef("pk"))
    oldest = of_queue.order_by("enqueued_at", "id")
    entered_between = {
        f"entered_{k}": _counted(
            of_queue.filter(enqueued_at__gt=points[k - 1], enqueued_at__lte=points[k])
        )
        for k in range(1, last)
    }
    queues = Queue.objects.annotate(
        open_counts=_open_counts(of_queue, now=now, first=points[0], buckets=buckets),
        oldest_id=Subquery(oldest.values("id")[:1]),
        oldest_enqueued_at=Subquery(oldest.values("enqueued_at")[:1]),
        **entered_between,
    ).order_by("name")
    return decided, queues


# The scan's SQL is a pure function of the filters and the bucket edges; every time in
# its parameters is `now` or a fixed distance from it. Building it with the ORM (35
# subqueries and expressions) cost more Python than the database spent running it, so
# on PostgreSQL, where times are passed to the driver as datetimes, it is built once
# per shape at a fixed origin and each request shifts the times by `now - origin`.
_SCAN_ORIGIN = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


@lru_cache(maxsize=64)
def _scan_sql(
    filters: Filters, buckets: tuple[Bucket, ...]
) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    rows, queues = _scan_querysets(filters=filters, now=_SCAN_ORIGIN, buckets=buckets)
    return tuple(
        (sql, tuple(params))
        for sql, params in (rows.query.sql_with_params(), queues.query.sql_with_params())
    )


def _shifted(params: tuple[Any, ...], now: dt.datetime) -> list[Any]:
    delta = now - _SCAN_ORIGIN
    return [p + delta if isinstance(p, dt.datetime) else p for p in params]


def window_scan(*, filters: Filters, now: dt.datetime, buckets: Sequence[Bucket]) -> WindowScan:
    """The open items and those decided in the last WINDOW, counted per queue, and for
    the backlog line per backlog point they entered (and left): two statements.

    An item counts at a point t when it was enqueued by t and not decided by t; an item
    cancelled without a decision time is not in the window at all (an approximation:
    the model keeps no cancel time apart from decided_at).
    """
    points = backlog_points(now)
    names = open_figure_names(buckets)
    if connection.vendor != "postgresql":
        rows, queues = _scan_querysets(filters=filters, now=now, buckets=buckets)
        return WindowScan(points=points, rows=list(rows), queues=list(queues), open_names=names)
    (rows_sql, rows_params), (queues_sql, queues_params) = _scan_sql(filters, tuple(buckets))
    with connection.cursor() as cursor:
        cursor.execute(rows_sql, _shifted(rows_params, now))
        columns = [column.name for column in cursor.description]
        grouped = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return WindowScan(
        points=points,
        rows=grouped,
        queues=list(Queue.objects.raw(queues_sql, _shifted(queues_params, now))),
        open_names=names,
    )


def queue_figures(
    *, filters: Filters, now: dt.datetime, buckets: Sequence[Bucket], scan: WindowScan | None = None
) -> list[QueueFigures]:
    """Every queue with its figures (queues without matching items included, with
    zeros), from the window scan. With filters active, only queues where some item
    matches are listed."""
    if scan is None:
        scan = window_scan(filters=filters, now=now, buckets=buckets)
    sums = scan.per_queue()
    empty: dict[str, int] = defaultdict(int)
    figures = []
    for queue in scan.queues:
        row = sums.get(queue.pk, empty)
        if filters.active and not row["items"]:
            continue
        oldest_at = getattr(queue, "oldest_enqueued_at", None)  # annotated (or raw) column
        figures.append(
            QueueFigures(
                queue=queue,
                backlog=row["backlog"],
                buckets=[(b, row[f"bucket_{i}"]) for i, b in enumerate(buckets)],
                at_risk=row["at_risk"],
                breached=row["breached"],
                wip=row["wip"],
                throughput=row["throughput"],
                reassignments=row["reassignments"],
                oldest_id=getattr(queue, "oldest_id", None),
                oldest_age=now - oldest_at if oldest_at else None,
            )
        )
    return figures


def median_queue_times(*, filters: Filters, now: dt.datetime) -> dict[int, dt.timedelta]:
    """Queue id -> median of (claimed_at - enqueued_at) over items claimed in the last
    24 hours, in one query.

    PostgreSQL sorts each queue's waits in a subquery per queue, each reading that
    queue's claims of the window from `workitem_claimed_by_queue`: no sort of the whole
    day's claims by queue before each queue's own sort (26 -> 16 ms over 39,000 claims).
    It returns the middle one or two waits (`MiddleWaits`, sorted as 8-byte timestamps
    rather than intervals: 11.8 -> 8.9 ms over 38,500 claims), averaged here.
    SQLite has no percentile: it numbers each queue's waits in order (a window
    function) and returns only the middle one or two rows per queue, which are
    averaged here.
    """
    since = now - WINDOW
    claimed = WorkItem.objects.filter(
        _window_rows(now), filters.q(), claimed_at__gte=since, claimed_at__lte=now
    )
    wait = F("claimed_at") - F("enqueued_at")
    if connection.vendor == "postgresql":
        of_queue = (
            claimed.filter(queue=OuterRef("pk"))
            .order_by()
            .values("queue")
            .annotate(middle=MiddleWaits(wait))
            .values("middle")
        )
        per_queue = Queue.objects.annotate(
            middle=Subquery(of_queue, output_field=ArrayField(DateTimeField()))
        ).values_list("pk", "middle")
        return {pk: median_from_middle(middle) for pk, middle in per_queue if middle}
    middle = (
        claimed.annotate(
            wait=wait,
            position=Window(RowNumber(), partition_by=[F("queue_id")], order_by=[F("wait").asc()]),
            size=Window(Count("id"), partition_by=[F("queue_id")]),
        )
        .filter(position__gte=(F("size") + 1) / 2, position__lte=(F("size") + 2) / 2)
        .values_list("queue_id", "wait")
    )
    waits: dict[int, list[dt.timedelta]] = defaultdict(list)
    for queue_id, value in middle:
        waits[queue_id].append(value)
    return {queue_id: _mean_of_middle(pair) for queue_id, pair in waits.items()}


def dashboard_figures(
    *, filters: Filters, now: dt.datetime, buckets: Sequence[Bucket], scan: WindowScan | None = None
) -> list[QueueFigures]:
    """The per-queue figures including the median queue time: three queries in all
    (one when given the window scan)."""
    figures = queue_figures(filters=filters, now=now, buckets=buckets, scan=scan)
    medians = median_queue_times(filters=filters, now=now)
    for row in figures:
        row.median_wait = medians.get(row.queue.pk)
    return figures


def totals(figures: Sequence[QueueFigures], buckets: Sequence[Bucket]) -> Totals:
    return Totals(
        backlog=sum(f.backlog for f in figures),
        buckets=[(b, sum(f.buckets[i][1] for f in figures)) for i, b in enumerate(buckets)],
        at_risk=sum(f.at_risk for f in figures),
        breached=sum(f.breached for f in figures),
        wip=sum(f.wip for f in figures),
        throughput=sum(f.throughput for f in figures),
        reassignments=sum(f.reassignments for f in figures),
    )


# Backlog over time ----------------------------------------------------------------------


def backlog_series(
    *, filters: Filters, now: dt.datetime, scan: WindowScan | None = None
) -> list[tuple[dt.datetime, int]]:
    """Open items at each hour of the last 24 (25 points, the last one now), from the
    window scan (two queries, none when given the scan)."""
    if scan is None:
        scan = window_scan(filters=filters, now=now, buckets=())
    return scan.backlog()


# One queue's items ----------------------------------------------------------------------


def sla_state(item: WorkItem) -> str:
    """The SLA state as words (never colour alone): breached, at risk or on time."""
    if item.breached_at is not None:
        return SLA_STATES["breached"]
    if item.warned_at is not None:
        return SLA_STATES["at_risk"]
    return SLA_STATES["on_time"]


@dataclass(frozen=True)
class ItemRow:
    item: WorkItem
    age: str
    sla: str


def item_rows(items: Sequence[WorkItem], now: dt.datetime) -> list[ItemRow]:
    return [
        ItemRow(item, short_duration(now - item.enqueued_at), sla_state(item)) for item in items
    ]


def queue_open_items(
    *,
    queue: Queue,
    filters: Filters,
    now: dt.datetime,
    bucket: Bucket | None = None,
    sla: str = "",
) -> QuerySet[WorkItem]:
    """The queue's open items, oldest first (the order of the partial index)."""
    items = WorkItem.objects.filter(filters.q(), queue=queue, state__in=OPEN_STATES)
    if bucket is not None:
        items = items.filter(bucket.q(now))
    if sla == "breached":
        items = items.filter(breached_at__isnull=False)
    elif sla == "at_risk":
        items = items.filter(warned_at__isnull=False, breached_at__isnull=True)
    elif sla == "on_time":
        items = items.filter(warned_at__isnull=True, breached_at__isnull=True)
    return items.select_related("assignee").order_by("enqueued_at", "id")
