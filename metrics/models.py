"""Service level objectives over what Arbiter measures, and the burn-rate alerts they raise.

An SLO names an SLI from a fixed set (metrics.slo computes each), an objective and a
window; its error budget is the share of events allowed to be bad. Alerts follow the
Google SRE workbook's multiwindow, multi-burn-rate recipe: a fast pair (1 h at 14.4x)
and a slow pair (6 h at 6x), each long window confirmed by a short one of 1/12 its
length, so an alert starts quickly and stops soon after the burning does.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from simple_history.models import HistoricalRecords

from audit.history import history_user
from orchestration.models import Impact

SHORT_WINDOW_DIVISOR = 12  # the short window confirming a long one is 1/12 of it


class SLIKind(models.TextChoices):
    REVIEW_WITHIN = "review_within", "Reviews decided within N business hours of enqueue"
    STEP_SUCCESS = "step_success", "Task step runs that succeed without a dead letter"
    CASE_LEAD_TIME = "case_lead_time", "Cases finished within N hours of submission"


# Which optional filters each SLI understands; the others must stay blank.
SLI_FILTERS: dict[str, frozenset[str]] = {
    SLIKind.REVIEW_WITHIN: frozenset({"within_hours", "impact", "queue", "workflow_slug"}),
    SLIKind.STEP_SUCCESS: frozenset({"handler", "workflow_slug"}),
    SLIKind.CASE_LEAD_TIME: frozenset({"within_hours", "impact", "workflow_slug"}),
}
NEEDS_HOURS = frozenset({SLIKind.REVIEW_WITHIN, SLIKind.CASE_LEAD_TIME})


class SLO(models.Model):
    """One objective: e.g. 95 % of high-impact reviews decided within 4 business hours,
    over 28 days. Edited by admins; every save is audited with its reason."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    sli = models.CharField("SLI", max_length=24, choices=SLIKind.choices)
    within_hours = models.DecimalField(
        max_digits=7,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="review_within: business hours from enqueue to decision (the queue's "
        "SLA calendar; around the clock without one). case_lead_time: hours from "
        "submission to finish.",
    )
    impact = models.CharField(
        max_length=16, choices=Impact.choices, blank=True, help_text="only cases of this impact"
    )
    queue = models.ForeignKey(
        "routing.Queue",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="review_within: only items of this queue",
    )
    handler = models.CharField(
        max_length=100, blank=True, help_text="step_success: only runs of this worker handler"
    )
    workflow_slug = models.SlugField(max_length=64, blank=True, help_text="only this workflow")
    objective = models.DecimalField(
        max_digits=6,
        decimal_places=3,
        help_text="percent of events that must be good, e.g. 99.5",
    )
    window_days = models.PositiveSmallIntegerField(
        default=28, help_text="the rolling window attainment and budget are measured over"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="notified when the budget burns too fast (managers when empty)",
    )
    fast_window = models.DurationField(
        default=dt.timedelta(hours=1), help_text="long window of the fast-burn alert"
    )
    fast_burn_rate = models.FloatField(
        default=14.4, help_text="fast alert when both windows burn faster than this"
    )
    slow_window = models.DurationField(
        default=dt.timedelta(hours=6), help_text="long window of the slow-burn alert"
    )
    slow_burn_rate = models.FloatField(
        default=6.0, help_text="slow alert when both windows burn faster than this"
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["name"]
        verbose_name = "SLO"
        verbose_name_plural = "SLOs"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(objective__gt=0, objective__lt=100),
                name="slo_objective_between_0_and_100",
            ),
            models.CheckConstraint(
                condition=models.Q(window_days__gte=1), name="slo_window_at_least_a_day"
            ),
            models.CheckConstraint(
                condition=models.Q(fast_burn_rate__gt=0, slow_burn_rate__gt=0),
                name="slo_burn_rates_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def objective_text(self) -> str:
        """95.000 as 95, 99.900 as 99.9."""
        return f"{self.objective.normalize():f}"

    @property
    def window(self) -> dt.timedelta:
        return dt.timedelta(days=self.window_days)

    @property
    def within(self) -> dt.timedelta | None:
        if self.within_hours is None:
            return None
        return dt.timedelta(hours=float(self.within_hours))

    @property
    def fast_short_window(self) -> dt.timedelta:
        return self.fast_window / SHORT_WINDOW_DIVISOR

    @property
    def slow_short_window(self) -> dt.timedelta:
        return self.slow_window / SHORT_WINDOW_DIVISOR

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.objective is not None and not Decimal(0) < self.objective < Decimal(100):
            errors["objective"] = "a percentage above 0 and below 100, e.g. 99.5"
        allowed = SLI_FILTERS.get(self.sli, frozenset())
        if self.sli in NEEDS_HOURS and (self.within_hours is None or self.within_hours <= 0):
            errors["within_hours"] = "this SLI needs the hours an event may take"
        for name, value in (
            ("within_hours", self.within_hours),
            ("impact", self.impact),
            ("queue", self.queue_id),
            ("handler", self.handler),
            ("workflow_slug", self.workflow_slug),
        ):
            if value not in (None, "") and name not in allowed and name not in errors:
                errors[name] = f"{self.get_sli_display()} does not use this; leave it blank"
        for name in ("fast_window", "slow_window"):
            window = getattr(self, name)
            if window is not None and window < dt.timedelta(minutes=12):
                errors[name] = "at least 12 minutes (its short window is 1/12 of it)"
        if (
            self.fast_window is not None
            and self.slow_window is not None
            and "slow_window" not in errors
            and self.slow_window <= self.fast_window
        ):
            errors["slow_window"] = "the slow window must be longer than the fast one"
        if (
            self.slow_window is not None
            and self.window_days
            and self.slow_window > self.window
            and "slow_window" not in errors
        ):
            errors["slow_window"] = "the burn windows must fit in the SLO window"
        for name in ("fast_burn_rate", "slow_burn_rate"):
            rate = getattr(self, name)
            if rate is not None and rate <= 0:
                errors[name] = "a burn rate above 0, e.g. 14.4"
        if errors:
            raise ValidationError(errors)


class AlertSeverity(models.TextChoices):
    FAST = "fast", "Fast burn"
    SLOW = "slow", "Slow burn"


class SLOAlert(models.Model):
    """A burn-rate alert: opened when both windows of a pair burn too fast, cleared
    when they stop. At most one open alert per SLO and severity."""

    slo = models.ForeignKey(SLO, on_delete=models.CASCADE, related_name="alerts")
    severity = models.CharField(max_length=8, choices=AlertSeverity.choices)
    opened_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    threshold = models.FloatField()
    long_window = models.DurationField()
    short_window = models.DurationField()
    long_burn_rate = models.FloatField()
    short_burn_rate = models.FloatField()
    budget_used_percent = models.FloatField(null=True, blank=True)
    event_id = models.UUIDField(null=True, blank=True, help_text="the outbox event announcing it")

    class Meta:
        ordering = ["-opened_at", "-id"]
        verbose_name = "SLO alert"
        constraints = [
            models.UniqueConstraint(
                fields=["slo", "severity"],
                condition=models.Q(cleared_at__isnull=True),
                name="slo_alert_one_open_per_severity",
            ),
        ]

    def __str__(self) -> str:
        state = "open" if self.cleared_at is None else "cleared"
        return f"{self.get_severity_display()} of {self.slo_id}: {state}"

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None

    @property
    def threshold_text(self) -> str:
        return f"{self.threshold:g}x"
