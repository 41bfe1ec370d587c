"""Aggregate reads of the SLA aging dashboard: per-queue figures, the backlog over the
last day, and one queue's open items.

Every figure is computed in SQL with conditional aggregation, so the page costs the
same few queries whether there are two queues or two hundred: one grouped query for
the per-queue figures, one for the median queue times, one for the backlog line.
Open items are read through the partial index `workitem_open_by_queue`, recent
decisions through `workitem_decided`; a closed item always carries `decided_at`, so
"open, or decided in the window" reaches every row a figure of the window needs.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    F,
    FilteredRelation,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Window,
)
from django.db.models.functions import Coalesce, RowNumber

from config.errors import ApplicationError
from routing.models import OPEN_STATES, ItemState, Queue, WorkItem

DEFAULT_AGE_BUCKETS = (1, 4, 24)  # hours; edges between the buckets of open items
WINDOW = dt.timedelta(hours=24)  # throughput, queue time and the backlog line look back this far
BACKLOG_STEP = dt.timedelta(hours=1)
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

    def q(self, now: dt.datetime, prefix: str = "") -> Q:
        """The items of this bucket at `now`, as a condition on enqueue time."""
        condition = Q()
        if self.low is not None:
            condition &= Q(**{f"{prefix}enqueued_at__lte": now - self.low})
        if self.high is not None:
            condition &= Q(**{f"{prefix}enqueued_at__gt": now - self.high})
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

    def q(self, prefix: str = "") -> Q:
        condition = Q()
        if self.region:
            condition &= Q(**{f"{prefix}region": self.region})
        if self.skill:
            if connection.vendor == "postgresql":
                condition &= Q(**{f"{prefix}skills__contains": [self.skill]})
            else:
                # SQLite has no JSON containment; the stored list is JSON text, so the
                # quoted name matches exactly one element (slugs hold no quotes).
                condition &= Q(**{f"{prefix}skills__icontains": f'"{self.skill}"'})
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


class Median(Aggregate):
    """PostgreSQL's continuous median (percentile_cont 0.5) of an interval."""

    function = "PERCENTILE_CONT"
    name = "Median"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DurationField()


def _window_rows(now: dt.datetime, prefix: str = "") -> Q:
    """Rows any figure of the window needs: open, or decided within it."""
    return Q(**{f"{prefix}state__in": OPEN_STATES}) | Q(
        **{f"{prefix}decided_at__gte": now - WINDOW}
    )


def queue_figures(
    *, filters: Filters, now: dt.datetime, buckets: Sequence[Bucket]
) -> list[QueueFigures]:
    """Every queue with its figures, in one grouped query (queues without matching
    items included, with zeros). With filters active, only queues where some item
    matches are listed."""
    since = now - WINDOW
    open_ = Q(recent__state__in=OPEN_STATES)
    annotations: dict[str, Any] = {
        "backlog": Count("recent", filter=open_),
        "at_risk": Count(
            "recent",
            filter=open_ & Q(recent__warned_at__isnull=False, recent__breached_at__isnull=True),
        ),
        "breached": Count("recent", filter=open_ & Q(recent__breached_at__isnull=False)),
        "wip": Count("recent", filter=Q(recent__state=ItemState.CLAIMED)),
        "throughput": Count(
            "recent", filter=Q(recent__state=ItemState.DONE, recent__decided_at__gte=since)
        ),
        "reassignments": Coalesce(
            Sum(
                "recent__reassignment_count",
                filter=open_ | Q(recent__enqueued_at__gte=since) | Q(recent__decided_at__gte=since),
            ),
            0,
        ),
        "touched": Count("recent"),
    }
    for index, bucket in enumerate(buckets):
        annotations[f"bucket_{index}"] = Count(
            "recent", filter=open_ & bucket.q(now, prefix="recent__")
        )
    # Walks the partial index (queue, enqueued_at) of open items: one row per queue.
    oldest = WorkItem.objects.filter(
        filters.q(), queue=OuterRef("pk"), state__in=OPEN_STATES
    ).order_by("enqueued_at", "id")
    rows: QuerySet[Any] = (
        Queue.objects.annotate(
            recent=FilteredRelation(
                "items", condition=_window_rows(now, "items__") & filters.q("items__")
            )
        )
        .annotate(
            **annotations,
            oldest_id=Subquery(oldest.values("id")[:1]),
            oldest_enqueued_at=Subquery(oldest.values("enqueued_at")[:1]),
        )
        .order_by("name")
    )
    if filters.active:
        rows = rows.filter(touched__gt=0)
    return [
        QueueFigures(
            queue=row,
            backlog=row.backlog,
            buckets=[(b, getattr(row, f"bucket_{i}")) for i, b in enumerate(buckets)],
            at_risk=row.at_risk,
            breached=row.breached,
            wip=row.wip,
            throughput=row.throughput,
            reassignments=row.reassignments,
            oldest_id=row.oldest_id,
            oldest_age=now - row.oldest_enqueued_at if row.oldest_enqueued_at else None,
        )
        for row in rows
    ]


def median_queue_times(*, filters: Filters, now: dt.datetime) -> dict[int, dt.timedelta]:
    """Queue id -> median of (claimed_at - enqueued_at) over items claimed in the last
    24 hours, in one query.

    PostgreSQL computes percentile_cont per queue. SQLite has no percentile: it numbers
    each queue's waits in order (a window function) and returns only the middle one or
    two rows per queue, which are averaged here.
    """
    since = now - WINDOW
    claimed = WorkItem.objects.filter(
        _window_rows(now), filters.q(), claimed_at__gte=since, claimed_at__lte=now
    )
    wait = F("claimed_at") - F("enqueued_at")
    if connection.vendor == "postgresql":
        grouped = claimed.values("queue_id").annotate(median=Median(wait)).order_by()
        return {row["queue_id"]: row["median"] for row in grouped}
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
    return {queue_id: sum(pair, dt.timedelta()) / len(pair) for queue_id, pair in waits.items()}


def dashboard_figures(
    *, filters: Filters, now: dt.datetime, buckets: Sequence[Bucket]
) -> list[QueueFigures]:
    """The per-queue figures including the median queue time: two queries in all."""
    figures = queue_figures(filters=filters, now=now, buckets=buckets)
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


def backlog_series(*, filters: Filters, now: dt.datetime) -> list[tuple[dt.datetime, int]]:
    """Open items at each hour of the last 24 (25 points, the last one now), in one query.

    An item counts at t when it was enqueued by t and not yet decided at t; an item
    cancelled without a decision time is taken as gone for the whole window (an
    approximation: the model keeps no cancel time apart from decided_at).
    """
    start = now - WINDOW
    points = [start + BACKLOG_STEP * k for k in range(int(WINDOW / BACKLOG_STEP) + 1)]

    def open_at(t: dt.datetime) -> Q:
        still_there = Q(decided_at__isnull=True) & ~Q(state=ItemState.CANCELLED)
        return Q(enqueued_at__lte=t) & (still_there | Q(decided_at__gt=t))

    # Only rows open now or decided within the window can count at any point of it.
    counts = WorkItem.objects.filter(
        filters.q(), _window_rows(now), enqueued_at__lte=now
    ).aggregate(**{f"p{k}": Count("id", filter=open_at(t)) for k, t in enumerate(points)})
    return [(t, counts[f"p{k}"] or 0) for k, t in enumerate(points)]


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
