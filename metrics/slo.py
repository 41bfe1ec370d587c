"""SLOs: what each SLI counts, and the arithmetic of attainment, error budget and burn
rate. The reads behind the SLO page and the evaluator; nothing here writes.

Events of each SLI (an event belongs to the window its time falls in):

- review_within: review and four-eyes work items (optionally of one queue, of cases of
  one impact, of one workflow). A decided item is an event at its decision time, good
  when the business time from enqueue to decision (the queue's SLA calendar; around
  the clock without one) is at most N hours. An item still open after N business
  hours is already a bad event, at the moment it went over; so a stuck queue burns
  budget before anyone decides anything.
- step_success: forward task step runs (not compensations), optionally of one
  handler or workflow, that finished (succeeded, failed or dead-lettered): an event at
  `finished_at`, good when it succeeded and never had a dead letter.
- case_lead_time: cases (optionally of one impact or workflow) finished: an event at
  `finished_at`, good when finished within N hours of submission; a case still
  unfinished N hours after submission is a bad event from that moment.

Arithmetic, for n events of which b bad in a window and an objective o (a fraction):

- attainment = (n - b) / n
- error budget = n * (1 - o) events; used = b, as a share b / (n * (1 - o)); left =
  budget - b (negative once overspent)
- burn rate = (b / n) / (1 - o): at 1 the budget lasts exactly the SLO window; at
  14.4 a 30-day budget would be gone in about two days.

An alert pair fires when the burn rate of its long window and of its short window
(1/12 of the long one) both exceed the pair's threshold.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet

from metrics.models import SLO, AlertSeverity, SLIKind, SLOAlert
from orchestration.models import FINISHED_CASE_STATES, Case, DeadLetter, StepRun, StepStatus
from routing.calendar import business_add, business_elapsed
from routing.dashboard import short_duration
from routing.models import OPEN_STATES, BusinessCalendar, ItemKind, ItemState, WorkItem

Range = tuple[dt.datetime, dt.datetime]  # [start, end)
FINAL_STEP_STATES = (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.DEAD_LETTERED)
REVIEW_KINDS = (ItemKind.REVIEW, ItemKind.FOUR_EYES)


# Arithmetic -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """Events of an SLI in a window, and how many of them were bad."""

    total: int = 0
    bad: int = 0

    @property
    def good(self) -> int:
        return self.total - self.bad


def allowed_error(objective: Decimal | float | str) -> Fraction:
    """The share of events allowed to be bad: 1 - objective, exactly (99.9 -> 1/1000)."""
    return (100 - Fraction(Decimal(str(objective)))) / 100


def attainment(tally: Tally) -> float | None:
    """Percent of events that were good; None without events."""
    if not tally.total:
        return None
    return float(Fraction(tally.good, tally.total) * 100)


def burn_rate(tally: Tally, objective: Decimal | float | str) -> float | None:
    """How fast the window spends error budget: its error rate over the allowed one."""
    if not tally.total:
        return None
    return float(Fraction(tally.bad, tally.total) / allowed_error(objective))


@dataclass(frozen=True)
class Budget:
    events: float  # bad events allowed in the window
    used: int  # bad events that happened
    left: float  # events - used; negative once overspent
    used_percent: float  # of the budget; above 100 once overspent
    left_percent: float


def error_budget(tally: Tally, objective: Decimal | float | str) -> Budget:
    """The window's error budget in events and in percent of itself."""
    allowed = tally.total * allowed_error(objective)
    # No events: nothing allowed and nothing spent.
    used_share = Fraction(tally.bad) / allowed * 100 if allowed else Fraction(0)
    return Budget(
        events=float(allowed),
        used=tally.bad,
        left=float(allowed - tally.bad),
        used_percent=float(used_share),
        left_percent=float(100 - used_share),
    )


# SLIs -----------------------------------------------------------------------------------


def rate_text(rate: float) -> str:
    """A burn-rate threshold as an admin typed it: 14.4x, 6x."""
    return f"{rate:g}x"


def _in(name: str, span: Range) -> Q:
    return Q(**{f"{name}__gte": span[0], f"{name}__lt": span[1]})


def _containing(moment: dt.datetime, ranges: Mapping[str, Range]) -> Iterable[str]:
    return (key for key, (start, end) in ranges.items() if start <= moment < end)


def _tallies(counts: Mapping[str, int], ranges: Mapping[str, Range]) -> dict[str, Tally]:
    return {key: Tally(total=counts[f"{key}_total"], bad=counts[f"{key}_bad"]) for key in ranges}


def _review_within(slo: SLO, now: dt.datetime, ranges: Mapping[str, Range]) -> dict[str, Tally]:
    within = slo.within or dt.timedelta(0)
    earliest = min(start for start, _ in ranges.values())
    items = WorkItem.objects.filter(kind__in=REVIEW_KINDS)
    if slo.queue_id is not None:
        items = items.filter(queue_id=slo.queue_id)
    if slo.impact:
        items = items.filter(case__impact=slo.impact)
    if slo.workflow_slug:
        items = items.filter(case__workflow__slug=slo.workflow_slug)
    decided = items.filter(state=ItemState.DONE, decided_at__gte=earliest, decided_at__lt=now)
    totals = decided.aggregate(
        **{key: Count("id", filter=_in("decided_at", span)) for key, span in ranges.items()}
    )
    # Business time never runs faster than the clock: only an item that took longer
    # than N hours of wall time can be late, so only those are read and checked here.
    late_by_clock = list(
        decided.filter(decided_at__gt=F("enqueued_at") + within).values_list(
            "enqueued_at", "decided_at", "queue__sla_policy__calendar_id"
        )
    )
    waiting = list(
        items.filter(state__in=OPEN_STATES, enqueued_at__lt=now - within).values_list(
            "enqueued_at", "queue__sla_policy__calendar_id"
        )
    )
    calendar_ids = {row[-1] for row in (*late_by_clock, *waiting) if row[-1] is not None}
    calendars = BusinessCalendar.objects.in_bulk(calendar_ids) if calendar_ids else {}
    total: Counter[str] = Counter({key: totals[key] for key in ranges})
    bad: Counter[str] = Counter()
    for enqueued_at, decided_at, calendar_id in late_by_clock:
        calendar = calendars.get(calendar_id)
        if decided_at is not None and business_elapsed(calendar, enqueued_at, decided_at) > within:
            bad.update(_containing(decided_at, ranges))
    for enqueued_at, calendar_id in waiting:
        try:
            late_at = business_add(calendars.get(calendar_id), enqueued_at, within)
        except ValueError:  # a calendar with no working time: the clock decides
            late_at = enqueued_at + within
        if late_at < now:
            keys = list(_containing(late_at, ranges))
            total.update(keys)
            bad.update(keys)
    return {key: Tally(total=total[key], bad=bad[key]) for key in ranges}


def _step_success(slo: SLO, now: dt.datetime, ranges: Mapping[str, Range]) -> dict[str, Tally]:
    earliest = min(start for start, _ in ranges.values())
    runs = StepRun.objects.filter(
        kind="task",
        is_compensation=False,
        status__in=FINAL_STEP_STATES,
        finished_at__gte=earliest,
        finished_at__lt=now,
    )
    if slo.handler:
        runs = runs.filter(handler=slo.handler)
    if slo.workflow_slug:
        runs = runs.filter(case__workflow__slug=slo.workflow_slug)
    lettered = Exists(DeadLetter.objects.filter(step_run=OuterRef("pk")))
    bad = ~Q(status=StepStatus.SUCCEEDED) | Q(lettered=True)
    counts: dict[str, Any] = {}
    for key, span in ranges.items():
        counts[f"{key}_total"] = Count("id", filter=_in("finished_at", span))
        counts[f"{key}_bad"] = Count("id", filter=_in("finished_at", span) & bad)
    return _tallies(runs.annotate(lettered=lettered).aggregate(**counts), ranges)


def _case_lead_time(slo: SLO, now: dt.datetime, ranges: Mapping[str, Range]) -> dict[str, Tally]:
    within = slo.within or dt.timedelta(0)
    earliest = min(start for start, _ in ranges.values())
    unfinished = Q(finished_at__isnull=True) & ~Q(status__in=FINISHED_CASE_STATES)
    # Finished in the windows, or still unfinished and over N hours within them.
    cases = Case.objects.filter(
        Q(finished_at__gte=earliest, finished_at__lt=now)
        | (unfinished & Q(created_at__gte=earliest - within, created_at__lt=now - within))
    )
    if slo.impact:
        cases = cases.filter(impact=slo.impact)
    if slo.workflow_slug:
        cases = cases.filter(workflow__slug=slo.workflow_slug)
    counts: dict[str, Any] = {}
    for key, (start, end) in ranges.items():
        finished = _in("finished_at", (start, end))
        went_over = unfinished & _in("created_at", (start - within, end - within))
        late = finished & Q(finished_at__gt=F("created_at") + within)
        counts[f"{key}_total"] = Count("id", filter=finished | went_over)
        counts[f"{key}_bad"] = Count("id", filter=late | went_over)
    return _tallies(cases.aggregate(**counts), ranges)


SLIS = {
    SLIKind.REVIEW_WITHIN: _review_within,
    SLIKind.STEP_SUCCESS: _step_success,
    SLIKind.CASE_LEAD_TIME: _case_lead_time,
}


def tallies(slo: SLO, *, now: dt.datetime, ranges: Mapping[str, Range]) -> dict[str, Tally]:
    """The SLO's events and bad events in each named range (all ending by `now`)."""
    return SLIS[SLIKind(slo.sli)](slo, now, ranges)


# Status ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BurnWindow:
    """One alert pair: the long and short windows' burn rates against the threshold."""

    severity: str
    threshold: float
    long_window: dt.timedelta
    short_window: dt.timedelta
    long: Tally
    short: Tally
    long_rate: float | None
    short_rate: float | None

    @property
    def firing(self) -> bool:
        """Both windows burn faster than the threshold (no events: no burn)."""
        return (
            self.long_rate is not None
            and self.short_rate is not None
            and self.long_rate > self.threshold
            and self.short_rate > self.threshold
        )

    @property
    def label(self) -> str:
        return AlertSeverity(self.severity).label

    @property
    def threshold_text(self) -> str:
        return rate_text(self.threshold)

    @property
    def long_window_text(self) -> str:
        return short_duration(self.long_window)

    @property
    def short_window_text(self) -> str:
        return short_duration(self.short_window)


@dataclass
class SLOStatus:
    slo: SLO
    now: dt.datetime
    window: Tally
    attainment: float | None
    budget: Budget
    burn_rate: float | None  # over the whole SLO window
    fast: BurnWindow
    slow: BurnWindow
    open_alerts: list[SLOAlert] = field(default_factory=list)

    @property
    def meeting(self) -> bool | None:
        """Whether the window attains the objective; None without events."""
        if not self.window.total:
            return None
        share = Fraction(self.window.good, self.window.total)
        return share >= 1 - allowed_error(self.slo.objective)

    @property
    def pairs(self) -> tuple[BurnWindow, BurnWindow]:
        return (self.fast, self.slow)

    @property
    def sli_text(self) -> str:
        return describe(self.slo)


def describe(slo: SLO) -> str:
    """What the SLI counts, in words: "Reviews (high impact, queue kyc) decided within
    4 business hours of enqueue"."""
    hours = f"{slo.within_hours.normalize():f}" if slo.within_hours is not None else "N"
    scope = [
        *([f"{slo.impact} impact"] if slo.impact else []),
        *([f"queue {slo.queue.name}"] if slo.queue_id is not None and slo.queue else []),
        *([f"workflow {slo.workflow_slug}"] if slo.workflow_slug else []),
        *([f"handler {slo.handler}"] if slo.handler else []),
    ]
    within = f" ({', '.join(scope)})" if scope else ""
    if slo.sli == SLIKind.REVIEW_WITHIN:
        return f"Reviews{within} decided within {hours} business hours of enqueue"
    if slo.sli == SLIKind.STEP_SUCCESS:
        return f"Task step runs{within} that succeed without a dead letter"
    return f"Cases{within} finished within {hours} hours of submission"


def _ranges(slo: SLO, now: dt.datetime) -> dict[str, Range]:
    return {
        "window": (now - slo.window, now),
        "fast_long": (now - slo.fast_window, now),
        "fast_short": (now - slo.fast_short_window, now),
        "slow_long": (now - slo.slow_window, now),
        "slow_short": (now - slo.slow_short_window, now),
    }


def _pair(slo: SLO, counts: Mapping[str, Tally], severity: AlertSeverity) -> BurnWindow:
    prefix = severity.value
    long, short = counts[f"{prefix}_long"], counts[f"{prefix}_short"]
    fast = severity == AlertSeverity.FAST
    return BurnWindow(
        severity=severity.value,
        threshold=slo.fast_burn_rate if fast else slo.slow_burn_rate,
        long_window=slo.fast_window if fast else slo.slow_window,
        short_window=slo.fast_short_window if fast else slo.slow_short_window,
        long=long,
        short=short,
        long_rate=burn_rate(long, slo.objective),
        short_rate=burn_rate(short, slo.objective),
    )


def slo_status(slo: SLO, *, now: dt.datetime) -> SLOStatus:
    """Attainment and budget over the SLO's window, and both burn-rate pairs, at `now`."""
    counts = tallies(slo, now=now, ranges=_ranges(slo, now))
    window = counts["window"]
    return SLOStatus(
        slo=slo,
        now=now,
        window=window,
        attainment=attainment(window),
        budget=error_budget(window, slo.objective),
        burn_rate=burn_rate(window, slo.objective),
        fast=_pair(slo, counts, AlertSeverity.FAST),
        slow=_pair(slo, counts, AlertSeverity.SLOW),
        open_alerts=list(getattr(slo, "open_alerts", [])),
    )


def active_slos() -> QuerySet[SLO]:
    """Active SLOs with their owner, queue and open alerts (two queries in all)."""
    return (
        SLO.objects.filter(active=True)
        .select_related("owner", "queue")
        .prefetch_related(
            Prefetch(
                "alerts",
                queryset=SLOAlert.objects.filter(cleared_at__isnull=True).order_by("severity"),
                to_attr="open_alerts",
            )
        )
        .order_by("name")
    )


def slo_statuses(*, now: dt.datetime) -> list[SLOStatus]:
    """Every active SLO's status: two queries, then one to four per SLO (its SLI)."""
    return [slo_status(slo, now=now) for slo in active_slos()]


def recent_alerts(*, limit: int = 20) -> QuerySet[SLOAlert]:
    return SLOAlert.objects.select_related("slo").order_by("-opened_at", "-id")[:limit]
