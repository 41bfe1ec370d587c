"""Workforce planning reads: how many reviewers each queue needs, shift by shift, next
to how many it has, and a Little's law check of the flow figures.

Measured inputs, per queue:

* arrival rate per hour of week: work items enqueued in each (weekday, hour) bucket
  over the last `weeks` weeks, divided by `weeks`;
* handle time: the mean of (decided_at - claimed_at) of items done in that span,
  or DEFAULT_HANDLE_TIME when there are none;
* SLA target: the queue's SLAPolicy.target, or DEFAULT_TARGET without a policy.

Modelling assumption. Erlang C answers "what share of arrivals *starts* within T of
arriving", while a review SLA runs from enqueue to *decision*: the wait plus the handling.
An item meets the target when wait + handle <= target; taking the handle time at its
mean, that is wait <= target - AHT. So the answer time of the model is
T = target - AHT, or 0 when the handle time alone uses up the target (then only the
items that never wait can make it, and SL = 1 - P_w). The SLA clock runs in business
time; treating it as wall-clock time during the hours being planned is exact for a
24x7 calendar and cautious for office hours. With SLAs of hours and handle times of
minutes, T / AHT is large and the Erlang term fades quickly: the requirement is then
mostly "more than A reviewers", and the occupancy cap (DEFAULT_MAX_OCCUPANCY) often
decides; both limits are applied.

Time zone. Hours of week are read on the site's clock, settings.TIME_ZONE (the default
time zone, never the one activated for a request): the SQL extracts weekday and hour in
it, the shifts are hours of its days, and each reviewer's weekly schedule (kept in their
own time zone) is mapped onto its hours for the current week, DST included.

Queries: one for the queues, one grouped count of arrivals, one grouped read of the
flow figures (WIP, throughput, lead and handle times), one for who may work which
queue (users directly and through groups, a UNION), one for their profiles (skipped
when nobody may work any queue): five in all, whatever the number of queues, items or
reviewers.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.db.models import Avg, Count, DurationField, F, Q
from django.db.models.functions import ExtractHour, ExtractIsoWeekDay
from django.utils import timezone

from metrics import erlang
from routing.models import OPEN_STATES, ItemState, Queue, ReviewerProfile, WorkItem

ARRIVAL_WEEKS = 4
DEFAULT_HANDLE_TIME = dt.timedelta(minutes=10)
DEFAULT_TARGET = dt.timedelta(hours=4)
DEFAULT_SERVICE_LEVEL = 0.80
DEFAULT_MAX_OCCUPANCY = 0.85
LITTLE_WINDOW = dt.timedelta(days=7)
LITTLE_TOLERANCE = 0.25  # flag when L and λW differ by more than this share of λW
LITTLE_MIN_GAP = 1.0  # and by at least one item: a smaller gap is rounding, not a signal
HOURS_PER_WEEK = 7 * 24
HOUR = dt.timedelta(hours=1)
EN_DASH = "\N{EN DASH}"
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Shift:
    """Hours [start, end) of every day, on the site's clock."""

    start: int
    end: int

    @property
    def label(self) -> str:
        return f"{self.start:02d}{EN_DASH}{self.end:02d}"


# Three eight-hour shifts a day; each day's shifts must cover 0-24 without overlap.
SHIFTS: tuple[Shift, ...] = (Shift(0, 8), Shift(8, 16), Shift(16, 24))


def shift_of(hour: int) -> int:
    """The index in SHIFTS of the shift an hour of the day (0-23) falls in."""
    for index, shift in enumerate(SHIFTS):
        if shift.start <= hour < shift.end:
            return index
    raise ValueError(f"no shift covers hour {hour}")


def hour_of_week(moment: dt.datetime) -> int:
    """0 (Monday 00:00-01:00) to 167 (Sunday 23:00-24:00), on the site's clock."""
    local = moment.astimezone(timezone.get_default_timezone())
    return local.weekday() * 24 + local.hour


def week_start(now: dt.datetime) -> dt.datetime:
    """Monday 00:00 of the current week, on the site's clock (aware)."""
    local = now.astimezone(timezone.get_default_timezone())
    return dt.datetime.combine(
        local.date() - dt.timedelta(days=local.weekday()), dt.time(0), tzinfo=local.tzinfo
    )


def answer_time(target: dt.timedelta, handle_time: dt.timedelta) -> dt.timedelta:
    """T of the model: the wait an item may have and still be decided within the
    target, target - AHT, and never below zero (see the module's docstring)."""
    return max(target - handle_time, dt.timedelta(0))


def _hours(value: dt.timedelta) -> float:
    return value / HOUR


def reviewers_needed(
    *,
    arrival_rate: float,
    handle_time: dt.timedelta,
    target: dt.timedelta,
    service_level: float,
    max_occupancy: float | None = DEFAULT_MAX_OCCUPANCY,
) -> int:
    """Erlang C: the fewest reviewers at work for `arrival_rate` items an hour to be
    decided within `target` at `service_level` (0-1), busy at most `max_occupancy`."""
    handle = _hours(handle_time)
    return erlang.required_agents(
        erlang.offered_load(arrival_rate, handle),
        handle,
        _hours(answer_time(target, handle_time)),
        service_level,
        max_occupancy=max_occupancy,
    )


# The plan per queue ---------------------------------------------------------------------


@dataclass(frozen=True)
class ShiftNeed:
    """One shift of one weekday: the peak hourly requirement and who is scheduled."""

    day: int  # 0 is Monday
    shift: Shift
    need: int  # reviewers needed in the shift's busiest hour
    peak_rate: float  # arrivals per hour in that hour
    scheduled: int  # the most reviewers the weekly schedules put in the shift at once
    short_hours: int  # hours of the shift with fewer scheduled than needed
    current: bool = False

    @property
    def short(self) -> bool:
        return self.short_hours > 0


@dataclass
class QueuePlan:
    queue: Queue
    target: dt.timedelta
    target_is_default: bool
    handle_time: dt.timedelta
    handled: int  # done items the handle time is the mean of; 0: the default is used
    arrivals: list[float]  # per hour of week
    needs: list[int]  # per hour of week
    shifts: list[ShiftNeed]  # 7 days x len(SHIFTS), Monday's first
    now_hour: int
    eligible: int  # active people with a profile who may work the queue
    on_shift_now: int  # of those, available now (on shift, in schedule, not absent)
    unscheduled: int  # of those, without a weekly schedule (not in the shift counts)

    @property
    def handle_is_default(self) -> bool:
        return self.handled == 0

    @property
    def answer_time(self) -> dt.timedelta:
        return answer_time(self.target, self.handle_time)

    @property
    def current_shift(self) -> ShiftNeed:
        return next(s for s in self.shifts if s.current)

    @property
    def target_text(self) -> str:
        return duration_text(self.target)

    @property
    def handle_time_text(self) -> str:
        return duration_text(self.handle_time)

    @property
    def answer_time_text(self) -> str:
        return duration_text(self.answer_time)

    @property
    def need_now(self) -> int:
        return self.needs[self.now_hour]

    @property
    def rate_now(self) -> float:
        return self.arrivals[self.now_hour]

    @property
    def short_now(self) -> bool:
        return self.shortfall_now > 0

    @property
    def shortfall_now(self) -> int:
        """Reviewers missing now against the current shift's need."""
        return max(self.current_shift.need - self.on_shift_now, 0)

    @property
    def weekly_arrivals(self) -> float:
        return sum(self.arrivals)

    @property
    def days(self) -> list[tuple[str, list[ShiftNeed]]]:
        size = len(SHIFTS)
        return [(DAY_NAMES[d], self.shifts[d * size : (d + 1) * size]) for d in range(7)]


def _arrival_counts(*, since: dt.datetime, now: dt.datetime, tz: dt.tzinfo) -> dict[int, list[int]]:
    """Queue id -> items enqueued per hour of week in [since, now), one grouped query."""
    rows = (
        WorkItem.objects.filter(enqueued_at__gte=since, enqueued_at__lt=now)
        .annotate(
            weekday=ExtractIsoWeekDay("enqueued_at", tzinfo=tz),
            hour=ExtractHour("enqueued_at", tzinfo=tz),
        )
        .values("queue_id", "weekday", "hour")
        .annotate(arrived=Count("id"))
        .order_by()
    )
    counts: dict[int, list[int]] = defaultdict(lambda: [0] * HOURS_PER_WEEK)
    for row in rows:
        counts[row["queue_id"]][(row["weekday"] - 1) * 24 + row["hour"]] += row["arrived"]
    return counts


@dataclass(frozen=True)
class FlowFigures:
    wip: int = 0
    done: int = 0  # in the Little window
    lead_time: dt.timedelta | None = None  # mean, of those done
    handled: int = 0  # done with a claim time in the arrival span
    handle_time: dt.timedelta | None = None  # mean, of those


def _flow_figures(*, now: dt.datetime, handle_since: dt.datetime) -> dict[int, FlowFigures]:
    """Queue id -> WIP now, throughput and mean lead time over LITTLE_WINDOW, and mean
    handle time since `handle_since`; one grouped query over open and recent rows."""
    little_since = now - LITTLE_WINDOW
    done_recently = Q(state=ItemState.DONE, decided_at__gte=little_since, decided_at__lte=now)
    handled = Q(
        state=ItemState.DONE,
        decided_at__gte=handle_since,
        decided_at__lte=now,
        claimed_at__isnull=False,
    )
    rows = (
        WorkItem.objects.filter(
            Q(state__in=OPEN_STATES) | Q(decided_at__gte=min(little_since, handle_since))
        )
        .values("queue_id")
        .annotate(
            wip=Count("id", filter=Q(state__in=OPEN_STATES)),
            done=Count("id", filter=done_recently),
            lead_time=Avg(
                F("decided_at") - F("enqueued_at"),
                filter=done_recently,
                output_field=DurationField(),
            ),
            handled=Count("id", filter=handled),
            handle_time=Avg(
                F("decided_at") - F("claimed_at"), filter=handled, output_field=DurationField()
            ),
        )
        .order_by()
    )
    return {
        row["queue_id"]: FlowFigures(
            wip=row["wip"],
            done=row["done"],
            lead_time=row["lead_time"],
            handled=row["handled"],
            handle_time=row["handle_time"],
        )
        for row in rows
    }


def _workers_by_queue(queue_ids: Iterable[int]) -> dict[int, set[int]]:
    """Queue id -> ids of active users with a reviewer profile who hold
    routing.work_on_queue on it, directly or through a group (one UNION query)."""
    from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

    perm = {
        "permission__codename": "work_on_queue",
        "permission__content_type__app_label": "routing",
        "content_type__app_label": "routing",
        "content_type__model": "queue",
    }
    direct = get_user_obj_perms_model()._default_manager.filter(
        **perm, user__is_active=True, user__reviewer_profile__isnull=False
    )
    via_group = get_group_obj_perms_model()._default_manager.filter(
        **perm, group__user__is_active=True, group__user__reviewer_profile__isnull=False
    )
    pairs = direct.values_list("object_pk", "user_id").union(
        via_group.values_list("object_pk", "group__user__id")
    )
    wanted = {str(pk) for pk in queue_ids}
    workers: dict[int, set[int]] = defaultdict(set)
    for object_pk, user_id in pairs:
        if object_pk in wanted:
            workers[int(object_pk)].add(user_id)
    return workers


def scheduled_hours(profile: ReviewerProfile, start: dt.datetime) -> frozenset[int]:
    """Hours of the week from `start` (Monday 00:00, site clock) that the person's
    weekly schedule covers: an hour counts when the schedule covers its first minute."""
    return frozenset(
        hour
        for hour in range(HOURS_PER_WEEK)
        # Wall-clock arithmetic on an aware datetime: hour h of the site's week.
        if profile.in_shift(start + dt.timedelta(hours=hour))
    )


def _shift_needs(
    needs: Sequence[int], arrivals: Sequence[float], staffed: Sequence[int], now_hour: int
) -> list[ShiftNeed]:
    result = []
    current = (now_hour // 24, shift_of(now_hour % 24))
    for day in range(7):
        for index, shift in enumerate(SHIFTS):
            hours = range(day * 24 + shift.start, day * 24 + shift.end)
            peak = max(hours, key=lambda h: (needs[h], arrivals[h]))
            result.append(
                ShiftNeed(
                    day=day,
                    shift=shift,
                    need=needs[peak],
                    peak_rate=arrivals[peak],
                    scheduled=max(staffed[h] for h in hours),
                    short_hours=sum(1 for h in hours if staffed[h] < needs[h]),
                    current=(day, index) == current,
                )
            )
    return result


def queue_plans(
    *,
    now: dt.datetime,
    service_level: float = DEFAULT_SERVICE_LEVEL,
    weeks: int = ARRIVAL_WEEKS,
    max_occupancy: float | None = DEFAULT_MAX_OCCUPANCY,
    flows: dict[int, FlowFigures] | None = None,
) -> list[QueuePlan]:
    """Every queue's staffing plan for a week, by name. Pass `flows` (from
    flow_figures with the same `weeks`) to share that query with the Little check."""
    tz = timezone.get_default_timezone()
    since = now - dt.timedelta(weeks=weeks)
    queues = list(Queue.objects.select_related("sla_policy").order_by("name"))
    counts = _arrival_counts(since=since, now=now, tz=tz)
    if flows is None:
        flows = flow_figures(now=now, weeks=weeks)
    workers = _workers_by_queue(q.pk for q in queues)
    people = set().union(*workers.values()) if workers else set()
    profiles = {p.user_id: p for p in ReviewerProfile.objects.filter(user_id__in=sorted(people))}
    start = week_start(now)
    hours_of = {
        user_id: scheduled_hours(p, start) for user_id, p in profiles.items() if p.shift_schedule
    }
    now_hour = hour_of_week(now)
    plans = []
    for queue in queues:
        policy = queue.sla_policy
        target = policy.target if policy is not None else DEFAULT_TARGET
        flow = flows.get(queue.pk, FlowFigures())
        handled = flow.handled if flow.handle_time and flow.handle_time > dt.timedelta(0) else 0
        handle_time = flow.handle_time if handled and flow.handle_time else DEFAULT_HANDLE_TIME
        arrivals = [n / weeks for n in counts.get(queue.pk, [0] * HOURS_PER_WEEK)]
        needs_of_rate: dict[float, int] = {}
        needs = []
        for rate in arrivals:
            if rate not in needs_of_rate:
                needs_of_rate[rate] = reviewers_needed(
                    arrival_rate=rate,
                    handle_time=handle_time,
                    target=target,
                    service_level=service_level,
                    max_occupancy=max_occupancy,
                )
            needs.append(needs_of_rate[rate])
        mine = [profiles[u] for u in sorted(workers.get(queue.pk, ())) if u in profiles]
        staffed = [0] * HOURS_PER_WEEK
        for profile in mine:
            for hour in hours_of.get(profile.user_id, ()):
                staffed[hour] += 1
        plans.append(
            QueuePlan(
                queue=queue,
                target=target,
                target_is_default=policy is None,
                handle_time=handle_time,
                handled=handled,
                arrivals=arrivals,
                needs=needs,
                shifts=_shift_needs(needs, arrivals, staffed, now_hour),
                now_hour=now_hour,
                eligible=len(mine),
                on_shift_now=sum(1 for p in mine if p.available(now)),
                unscheduled=sum(1 for p in mine if not p.shift_schedule),
            )
        )
    return plans


def flow_figures(*, now: dt.datetime, weeks: int = ARRIVAL_WEEKS) -> dict[int, FlowFigures]:
    """Queue id -> the flow figures planning reads (see _flow_figures)."""
    return _flow_figures(now=now, handle_since=now - dt.timedelta(weeks=weeks))


# Little's law ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LittleCheck:
    """L = λW per queue: open items now (L) against throughput over the last week (λ,
    done items per hour) times their mean lead time, enqueue to decision (W).

    Cancelled items leave without a decision and count in neither λ nor W.
    """

    queue: Queue
    wip: int
    done: int
    lead_time: dt.timedelta | None

    @property
    def throughput(self) -> float:
        """Done items per hour over LITTLE_WINDOW."""
        return self.done / _hours(LITTLE_WINDOW)

    @property
    def predicted(self) -> float:
        """λW: the WIP the last week's flow implies."""
        if self.lead_time is None:
            return 0.0
        return erlang.littles_law(self.throughput, _hours(self.lead_time))

    @property
    def ratio(self) -> float | None:
        """L / λW; None when nothing was done (λW = 0)."""
        return self.wip / self.predicted if self.predicted > 0 else None

    @property
    def lead_time_text(self) -> str:
        return duration_text(self.lead_time)

    @property
    def ratio_text(self) -> str:
        return "—" if self.ratio is None else f"{self.ratio:.2f}"

    @property
    def flagged(self) -> bool:
        """L and λW differ by more than LITTLE_TOLERANCE of λW and by at least
        LITTLE_MIN_GAP items (work waiting while nothing finishes counts): the queue is
        not in a steady state, or a figure is off."""
        gap = abs(self.wip - self.predicted)
        if gap < LITTLE_MIN_GAP:
            return False
        return self.predicted == 0 or gap / self.predicted > LITTLE_TOLERANCE


def little_checks(*, queues: Sequence[Queue], flows: dict[int, FlowFigures]) -> list[LittleCheck]:
    checks = []
    for queue in queues:
        flow = flows.get(queue.pk, FlowFigures())
        checks.append(
            LittleCheck(queue=queue, wip=flow.wip, done=flow.done, lead_time=flow.lead_time)
        )
    return checks


# The page, whole --------------------------------------------------------------------------


@dataclass
class Plan:
    now: dt.datetime
    service_level: float
    weeks: int
    max_occupancy: float | None
    queues: list[QueuePlan] = field(default_factory=list)
    little: list[LittleCheck] = field(default_factory=list)

    @property
    def service_level_text(self) -> str:
        return percent_text(self.service_level)

    @property
    def time_zone(self) -> str:
        return str(timezone.get_default_timezone())

    @property
    def current_day(self) -> str:
        return DAY_NAMES[hour_of_week(self.now) // 24]

    @property
    def current_shift(self) -> Shift:
        return SHIFTS[shift_of(hour_of_week(self.now) % 24)]


def workforce_plan(
    *,
    now: dt.datetime,
    service_level: float = DEFAULT_SERVICE_LEVEL,
    weeks: int = ARRIVAL_WEEKS,
    max_occupancy: float | None = DEFAULT_MAX_OCCUPANCY,
) -> Plan:
    """Staffing plans of all queues and their Little's law checks, in five queries."""
    flows = flow_figures(now=now, weeks=weeks)
    plans = queue_plans(
        now=now,
        service_level=service_level,
        weeks=weeks,
        max_occupancy=max_occupancy,
        flows=flows,
    )
    return Plan(
        now=now,
        service_level=service_level,
        weeks=weeks,
        max_occupancy=max_occupancy,
        queues=plans,
        little=little_checks(queues=[p.queue for p in plans], flows=flows),
    )


# What if ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WhatIf:
    """The answer to a what-if: the reviewers needed and what one fewer or one more
    would achieve (rows with N <= A, which cannot keep up, are left out)."""

    arrival_rate: float
    handle_time: dt.timedelta
    target: dt.timedelta
    service_level: float
    max_occupancy: float | None
    shrinkage: float
    load: float
    agents: int
    rows: list[erlang.Staffing]

    @property
    def answer_time(self) -> dt.timedelta:
        return answer_time(self.target, self.handle_time)

    @property
    def answer_time_text(self) -> str:
        return duration_text(self.answer_time)

    @property
    def service_level_text(self) -> str:
        return percent_text(self.service_level)

    @property
    def chosen(self) -> erlang.Staffing | None:
        return next((r for r in self.rows if r.agents == self.agents), None)

    @property
    def table(self) -> list[StaffingRow]:
        """The rows as people read them, the chosen N marked."""
        return [
            StaffingRow(
                agents=row.agents,
                heads=row.heads,
                service_level=percent_text(row.service_level),
                speed_of_answer=duration_text(row.average_speed_of_answer),
                occupancy=percent_text(row.occupancy),
                waits=percent_text(row.waits),
                chosen=row.agents == self.agents,
                meets=row.service_level >= self.service_level,
            )
            for row in self.rows
        ]


@dataclass(frozen=True)
class StaffingRow:
    agents: int
    heads: int
    service_level: str
    speed_of_answer: str
    occupancy: str
    waits: str
    chosen: bool
    meets: bool


def what_if(
    *,
    arrival_rate: float,
    handle_time: dt.timedelta,
    target: dt.timedelta,
    service_level: float,
    max_occupancy: float | None = DEFAULT_MAX_OCCUPANCY,
    shrinkage: float = 0.0,
) -> WhatIf:
    """Staffing for a hypothetical queue; raises ValueError on inputs out of range."""
    handle = _hours(handle_time)
    load = erlang.offered_load(arrival_rate, handle)
    agents = reviewers_needed(
        arrival_rate=arrival_rate,
        handle_time=handle_time,
        target=target,
        service_level=service_level,
        max_occupancy=max_occupancy,
    )
    answer = _hours(answer_time(target, handle_time))
    rows = [
        erlang.staffing_at(n, load, handle, answer, shrinkage=shrinkage)
        for n in (agents - 1, agents, agents + 1)
        if n > load or (n == agents == 0)
    ]
    return WhatIf(
        arrival_rate=arrival_rate,
        handle_time=handle_time,
        target=target,
        service_level=service_level,
        max_occupancy=max_occupancy,
        shrinkage=shrinkage,
        load=load,
        agents=agents,
        rows=rows,
    )


def percent_text(share: float | None) -> str:
    """0.8088 -> "80.9 %"."""
    return "—" if share is None else f"{share * 100:.1f} %"


def duration_text(hours: float | dt.timedelta | None) -> str:
    """A wait or handle time for people: 42 s, 12 min, 3 h 5 min, 2 d 4 h; "never"
    for an infinite wait."""
    if hours is None:
        return "—"
    seconds = hours.total_seconds() if isinstance(hours, dt.timedelta) else hours * 3600
    if math.isinf(seconds):
        return "never"
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else "< 1 s"
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours_, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours_} h" if hours_ else f"{days} d"
    if hours_:
        return f"{hours_} h {minutes} min" if minutes else f"{hours_} h"
    return f"{minutes} min"
