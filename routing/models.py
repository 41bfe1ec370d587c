"""Queues, reviewer profiles, routing rules and the work items people claim.

Claiming is the hot path: one short transaction that locks the oldest eligible row
of the highest priority class with SKIP LOCKED (PostgreSQL), so no item is ever
held by two people. The partial index below is what that query walks.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from simple_history.models import HistoricalRecords

from audit.history import history_user

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _check_time_zone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError({"time_zone": f"unknown time zone {name!r}"}) from None


class Skill(models.Model):
    """The vocabulary of skills; profiles, queues and cases name skills from it."""

    name = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class BusinessCalendar(models.Model):
    """When the clock of an SLA runs: opening hours on weekdays in a time zone, minus
    holidays; or around the clock (24x7)."""

    name = models.SlugField(max_length=64, unique=True)
    region = models.CharField(max_length=32, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    always_open = models.BooleanField(default=False, help_text="24x7: every hour counts")
    weekdays = models.JSONField(
        default=list, blank=True, help_text='working days, e.g. ["mon", "tue", "wed", "thu", "fri"]'
    )
    opens_at = models.TimeField(default=dt.time(9, 0))
    closes_at = models.TimeField(default=dt.time(17, 0))
    holidays = models.JSONField(default=list, blank=True, help_text="ISO dates, e.g. 2026-12-25")
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        _check_time_zone(self.time_zone)
        if self.always_open:
            return
        bad = [day for day in self.weekdays or [] if day not in WEEKDAYS]
        if bad or not self.weekdays:
            raise ValidationError(
                {"weekdays": f"name working days from {', '.join(WEEKDAYS)} (got {bad or 'none'})"}
            )
        if self.opens_at >= self.closes_at:
            raise ValidationError({"closes_at": "closing time must be after opening time"})
        for day in self.holidays or []:
            try:
                dt.date.fromisoformat(str(day))
            except ValueError:
                raise ValidationError(
                    {"holidays": f"{day!r} is not a date like 2026-12-25"}
                ) from None


class SLAPolicy(models.Model):
    """How long an item may take, in business time of its calendar, and when the
    escalation ladder climbs: at-risk warning, breach (notify), reassign, move."""

    name = models.SlugField(max_length=64, unique=True)
    target = models.DurationField(help_text="business time from enqueue to decision")
    warn_at_percent = models.PositiveSmallIntegerField(
        default=75, help_text="at-risk once this share of the target has passed"
    )
    idle_limit = models.DurationField(
        null=True, blank=True, help_text="a claimed item untouched this long goes back"
    )
    reassign_after_percent = models.PositiveSmallIntegerField(
        default=125, help_text="rung 2: reassign once this share of the target has passed"
    )
    move_after_percent = models.PositiveSmallIntegerField(
        default=150, help_text="rung 3: move to the escalation queue, priority raised"
    )
    calendar = models.ForeignKey(
        BusinessCalendar,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        help_text="empty: 24x7",
    )
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["name"]
        verbose_name = "SLA policy"
        verbose_name_plural = "SLA policies"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.target is not None and self.target <= dt.timedelta(0):
            raise ValidationError({"target": "the target must be longer than zero"})
        if not 0 < self.warn_at_percent < 100:
            raise ValidationError({"warn_at_percent": "between 1 and 99"})
        if not 100 <= self.reassign_after_percent <= self.move_after_percent:
            raise ValidationError(
                {"move_after_percent": "the ladder must climb: 100 <= reassign <= move"}
            )


class Strategy(models.TextChoices):
    PULL = "pull", "Pull (reviewers take the next item)"
    ROUND_ROBIN = "round_robin", "Round robin"
    LEAST_LOADED = "least_loaded", "Least loaded"
    SKILL_MATCH = "skill_match", "Best skill match"


class Queue(models.Model):
    """A queue of human work. Who may work it is a guardian object permission
    (`routing.work_on_queue`) on the queue."""

    name = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    regions = models.JSONField(default=list, blank=True, help_text="empty: any region")
    required_skills = models.JSONField(default=list, blank=True)
    priority_classes = models.JSONField(
        default=list, blank=True, help_text="classes the queue takes (1 most urgent); empty: 1-5"
    )
    wip_limit = models.PositiveIntegerField(
        default=0, help_text="claimed items at once; 0: no limit"
    )
    strategy = models.CharField(max_length=16, choices=Strategy.choices, default=Strategy.PULL)
    aging_step = models.DurationField(
        default=dt.timedelta(hours=4),
        help_text="waiting this long lifts an item by one priority class, so none starve",
    )
    sla_policy = models.ForeignKey(
        SLAPolicy, null=True, blank=True, on_delete=models.PROTECT, related_name="queues"
    )
    last_assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="round robin: who was pushed to last",
        editable=False,
    )
    escalation_queue = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["name"]
        permissions = [("work_on_queue", "May claim and decide the queue's items")]

    def __str__(self) -> str:
        return self.name


class ReviewerProfile(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviewer_profile"
    )
    # skill -> level (1 novice .. 5 expert)
    skills = models.JSONField(default=dict, blank=True)
    regions = models.JSONField(default=list, blank=True)
    capacity = models.PositiveIntegerField(default=5, help_text="personal WIP limit")
    on_shift = models.BooleanField(default=True, help_text="signed in for work now")
    time_zone = models.CharField(max_length=64, default="UTC")
    # {"mon": [["09:00", "17:00"]], ...}; empty: no schedule, the on-shift flag decides
    shift_schedule = models.JSONField(default=dict, blank=True)
    absent_from = models.DateTimeField(null=True, blank=True)
    absent_until = models.DateTimeField(null=True, blank=True)
    delegate = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="delegating_profiles",
        help_text="takes this person's items while they are absent",
    )
    history = HistoricalRecords(get_user=history_user)

    def __str__(self) -> str:
        return f"profile of {self.user}"

    def is_absent(self, now: dt.datetime) -> bool:
        if self.absent_from is None or self.absent_from > now:
            return False
        return self.absent_until is None or now < self.absent_until

    def in_shift(self, now: dt.datetime) -> bool:
        """Inside the weekly schedule (in the person's time zone); no schedule: yes."""
        if not self.shift_schedule:
            return True
        from zoneinfo import ZoneInfo

        local = now.astimezone(ZoneInfo(self.time_zone))
        clock = local.strftime("%H:%M")
        for start, end in self.shift_schedule.get(WEEKDAYS[local.weekday()], []):
            if start <= clock < end:
                return True
        return False

    def available(self, now: dt.datetime) -> bool:
        """May receive work now: on shift, inside the schedule and not absent."""
        return self.on_shift and self.in_shift(now) and not self.is_absent(now)

    def clean(self) -> None:
        _check_time_zone(self.time_zone)
        if not isinstance(self.skills, dict) or not all(
            isinstance(level, int) and 1 <= level <= 5 for level in self.skills.values()
        ):
            raise ValidationError({"skills": 'a map of skill to level 1-5, e.g. {"kyc": 3}'})
        unknown = sorted(set(self.skills) - set(Skill.objects.values_list("name", flat=True)))
        if unknown:
            raise ValidationError({"skills": f"unknown skills: {', '.join(unknown)}"})
        for day, spans in (self.shift_schedule or {}).items():
            if day not in WEEKDAYS:
                raise ValidationError({"shift_schedule": f"unknown day {day!r}"})
            for span in spans:
                if len(span) != 2 or not str(span[0]) < str(span[1]):
                    raise ValidationError(
                        {"shift_schedule": f'{day}: spans look like ["09:00", "17:00"]'}
                    )
        if self.absent_from and self.absent_until and self.absent_until <= self.absent_from:
            raise ValidationError({"absent_until": "the absence must end after it starts"})
        if self.delegate_id is not None and self.delegate_id == self.user_id:
            raise ValidationError({"delegate": "a person cannot be their own delegate"})


class ItemKind(models.TextChoices):
    REVIEW = "review", "Review"
    FOUR_EYES = "four_eyes", "Four-eyes review"
    QA = "qa", "QA of an automatic approval"


class RoutingRule(models.Model):
    """Ordered, admin-editable: the first active rule whose conditions match a work
    item sends it to its queue; blank conditions match anything."""

    order = models.PositiveIntegerField()
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="rules")
    kind = models.CharField(max_length=16, choices=ItemKind.choices, blank=True)
    region = models.CharField(max_length=32, blank=True)
    skill = models.CharField(max_length=64, blank=True)
    workflow_slug = models.SlugField(max_length=64, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        conditions = [
            f"{name}={value}"
            for name, value in (
                ("kind", self.kind),
                ("region", self.region),
                ("skill", self.skill),
                ("workflow", self.workflow_slug),
            )
            if value
        ]
        return f"#{self.order} {' '.join(conditions) or 'anything'} -> {self.queue}"


class ItemState(models.TextChoices):
    QUEUED = "queued"
    CLAIMED = "claimed"
    AWAITING_CHECKER = "awaiting_checker"
    DONE = "done"
    CANCELLED = "cancelled"


OPEN_STATES = (ItemState.QUEUED, ItemState.CLAIMED, ItemState.AWAITING_CHECKER)


class WorkItem(models.Model):
    case = models.ForeignKey(
        "orchestration.Case", on_delete=models.CASCADE, related_name="work_items"
    )
    step_run = models.ForeignKey(
        "orchestration.StepRun", on_delete=models.CASCADE, related_name="work_items"
    )
    kind = models.CharField(max_length=16, choices=ItemKind.choices)
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="items")
    priority = models.PositiveSmallIntegerField(default=3, help_text="1 is the most urgent class")
    region = models.CharField(max_length=32, blank=True)
    skills = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=20, choices=ItemState.choices, default=ItemState.QUEUED)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    enqueued_at = models.DateTimeField()
    # Claim order: enqueue time plus one aging step per priority class, so a higher
    # class goes first and a lower one catches up by waiting (no starvation).
    rank_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    warn_at = models.DateTimeField(null=True, blank=True)
    warned_at = models.DateTimeField(null=True, blank=True)
    breached_at = models.DateTimeField(null=True, blank=True)
    escalate_at = models.DateTimeField(
        null=True, blank=True, help_text="when the next rung of the escalation ladder is due"
    )
    snoozed_until = models.DateTimeField(null=True, blank=True)
    snooze_reason = models.CharField(max_length=500, blank=True)
    # Four-eyes: who gave the first verdict; the checker must be someone else.
    maker = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # User ids who may not take this item any more: the maker and checker of a
    # disputed four-eyes verdict, so neither settles their own dispute.
    excluded_reviewers = models.JSONField(default=list, blank=True)
    flag = models.CharField(max_length=200, blank=True, help_text="why a manager should look")
    reassignment_count = models.PositiveIntegerField(default=0)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        indexes = [
            models.Index(
                fields=["queue", "rank_at"],
                name="workitem_claimable",
                condition=models.Q(state__in=["queued", "awaiting_checker"]),
            ),
            # Claim order across all of a reviewer's queues: walked until the first fit.
            models.Index(
                fields=["rank_at", "id"],
                name="workitem_claim_order",
                condition=models.Q(state__in=["queued", "awaiting_checker"]),
            ),
            models.Index(fields=["assignee", "state"], name="workitem_assignee_state"),
            # The SLA sweep walks only what is due: open items not yet warned / escalated.
            models.Index(
                fields=["warn_at"],
                name="workitem_warn_due",
                condition=models.Q(
                    warned_at__isnull=True, state__in=["queued", "claimed", "awaiting_checker"]
                ),
            ),
            models.Index(
                fields=["escalate_at"],
                name="workitem_escalate_due",
                condition=models.Q(state__in=["queued", "claimed", "awaiting_checker"]),
            ),
            # The dashboard aggregates open items per queue. The INCLUDEd columns are
            # every one its per-queue counts read, so that scan never visits the table
            # (PostgreSQL; other databases ignore INCLUDE).
            models.Index(
                fields=["queue", "enqueued_at"],
                name="workitem_open_by_queue",
                condition=models.Q(state__in=["queued", "claimed", "awaiting_checker"]),
                include=["state", "warned_at", "breached_at", "reassignment_count", "decided_at"],
            ),
            # Items decided in a window (dashboard, flow metrics, SLOs), covering the
            # dashboard's counts of them. Undecided items stay out: intake writes no entry.
            models.Index(
                fields=["decided_at"],
                name="workitem_decided",
                condition=models.Q(decided_at__isnull=False),
                include=["queue", "state", "enqueued_at", "reassignment_count"],
            ),
            # Queue time by claim time (flow metrics, which it covers); unclaimed items
            # stay out of it.
            models.Index(
                fields=["claimed_at"],
                name="workitem_claimed",
                condition=models.Q(claimed_at__isnull=False),
                include=["queue", "enqueued_at", "state", "decided_at"],
            ),
            # The same per queue: the dashboard's median queue time reads one queue's
            # claims of the day at a time, already apart, instead of sorting the day's.
            models.Index(
                fields=["queue", "claimed_at"],
                name="workitem_claimed_by_queue",
                condition=models.Q(claimed_at__isnull=False),
                include=["enqueued_at", "state", "decided_at"],
            ),
        ]
        constraints = [
            # The maker of a four-eyes item can never hold it as its checker.
            models.CheckConstraint(
                condition=models.Q(maker__isnull=True)
                | models.Q(assignee__isnull=True)
                | ~models.Q(assignee=models.F("maker")),
                name="workitem_checker_is_not_the_maker",
            ),
            models.CheckConstraint(
                condition=~models.Q(state="claimed") | models.Q(assignee__isnull=False),
                name="workitem_claimed_has_an_assignee",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.case_id} in {self.queue_id}: {self.state}"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES
