"""Workflows, cases and their step runs, dead letters, timers, the outbox, breakers.

State changes go through orchestration.services; the models hold the vocabulary,
the constraints, and the pure transition tables the services check against.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from audit.history import history_user


class InvalidTransition(Exception):
    """A state change the transition table does not allow; nothing was changed."""


class Workflow(models.Model):
    """One version of a workflow. Published versions are immutable; cases pin one."""

    slug = models.SlugField(max_length=64)
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    definition = models.JSONField()
    published = models.BooleanField(default=False)
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["slug", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["slug", "version"], name="workflow_slug_version"),
        ]

    def __str__(self) -> str:
        return f"{self.slug} v{self.version}{'' if self.published else ' (draft)'}"


class CaseStatus(models.TextChoices):
    RUNNING = "running"
    IN_REVIEW = "in_review"
    WAITING = "waiting"
    STALLED = "stalled"
    APPROVED = "approved"
    REJECTED = "rejected"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"


FINISHED_CASE_STATES = frozenset(
    {
        CaseStatus.APPROVED,
        CaseStatus.REJECTED,
        CaseStatus.BLOCKED,
        CaseStatus.CANCELLED,
        CaseStatus.COMPENSATED,
        CaseStatus.COMPENSATION_FAILED,
    }
)

# from -> allowed to. Everything else raises InvalidTransition.
CASE_TRANSITIONS: dict[str, frozenset[str]] = {
    CaseStatus.RUNNING: frozenset(
        {
            CaseStatus.RUNNING,
            CaseStatus.IN_REVIEW,
            CaseStatus.WAITING,
            CaseStatus.STALLED,
            CaseStatus.APPROVED,
            CaseStatus.REJECTED,
            CaseStatus.BLOCKED,
            CaseStatus.CANCELLED,
            CaseStatus.COMPENSATING,
        }
    ),
    CaseStatus.IN_REVIEW: frozenset(
        {
            CaseStatus.RUNNING,
            CaseStatus.WAITING,  # returned to the submitter for rework
            CaseStatus.APPROVED,
            CaseStatus.REJECTED,
            CaseStatus.BLOCKED,
            CaseStatus.CANCELLED,
            CaseStatus.COMPENSATING,
        }
    ),
    CaseStatus.WAITING: frozenset(
        {
            CaseStatus.RUNNING,
            CaseStatus.APPROVED,
            CaseStatus.REJECTED,
            CaseStatus.CANCELLED,
            CaseStatus.COMPENSATING,
        }
    ),
    CaseStatus.STALLED: frozenset(
        {CaseStatus.RUNNING, CaseStatus.CANCELLED, CaseStatus.COMPENSATING}
    ),
    CaseStatus.COMPENSATING: frozenset(
        {
            CaseStatus.COMPENSATED,
            CaseStatus.COMPENSATION_FAILED,
            CaseStatus.CANCELLED,
        }
    ),
    # A failed compensation can be replayed from its dead letter.
    CaseStatus.COMPENSATION_FAILED: frozenset({CaseStatus.COMPENSATING}),
}


def check_case_transition(current: str, new: str) -> None:
    if new not in CASE_TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(f"a case cannot go from {current!r} to {new!r}")


class Impact(models.TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Case(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    correlation_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="cases")
    external_ref = models.CharField(max_length=200, blank=True)
    payload = models.JSONField(default=dict)
    proposed = models.JSONField(default=dict, blank=True)
    sources = models.JSONField(default=list, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    impact = models.CharField(max_length=16, choices=Impact.choices, default=Impact.MEDIUM)
    region = models.CharField(max_length=32, blank=True)
    skills = models.JSONField(default=list, blank=True)
    priority = models.PositiveSmallIntegerField(default=3)
    status = models.CharField(max_length=24, choices=CaseStatus.choices, default=CaseStatus.RUNNING)
    outcome = models.CharField(max_length=32, blank=True)
    current_step = models.CharField(max_length=48, blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    client = models.ForeignKey(
        "orchestration.ApiClient",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="cases",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="case_status_created"),
            # Flow metrics read finished cases by time; open cases (null) stay out of it.
            models.Index(
                fields=["finished_at"],
                name="case_finished",
                condition=models.Q(finished_at__isnull=False),
            ),
            models.Index(fields=["external_ref"], name="case_external_ref"),
            models.Index(fields=["client", "created_at"], name="case_client_created"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(confidence__isnull=True)
                | models.Q(confidence__gte=0, confidence__lte=1),
                name="case_confidence_0_1",
            ),
        ]

    def __str__(self) -> str:
        return f"case {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_CASE_STATES

    def move_to(self, status: str) -> None:
        check_case_transition(self.status, status)
        self.status = status


class StepStatus(models.TextChoices):
    PENDING = "pending"  # due now or at next_attempt_at
    RUNNING = "running"
    WAITING = "waiting"  # a wait step, or a review handed to people
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # permanent failure
    DEAD_LETTERED = "dead_lettered"
    CANCELLED = "cancelled"


STEP_TRANSITIONS: dict[str, frozenset[str]] = {
    StepStatus.PENDING: frozenset(
        {StepStatus.RUNNING, StepStatus.WAITING, StepStatus.CANCELLED, StepStatus.SUCCEEDED}
    ),
    StepStatus.RUNNING: frozenset(
        {
            StepStatus.SUCCEEDED,
            StepStatus.PENDING,  # a failed attempt that will be retried
            StepStatus.FAILED,
            StepStatus.DEAD_LETTERED,
            StepStatus.CANCELLED,
        }
    ),
    StepStatus.WAITING: frozenset({StepStatus.SUCCEEDED, StepStatus.CANCELLED}),
    StepStatus.DEAD_LETTERED: frozenset({StepStatus.PENDING, StepStatus.CANCELLED}),
}


class StepRun(models.Model):
    """One execution of one step (or of its compensation) for one case."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="step_runs")
    step_id = models.CharField(max_length=48)
    kind = models.CharField(max_length=16)
    handler = models.CharField(max_length=100, blank=True)
    is_compensation = models.BooleanField(default=False)
    compensates = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="compensations"
    )
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.PENDING)
    attempt = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.UUIDField(default=uuid.uuid4, editable=False)
    output = models.JSONField(null=True, blank=True)
    outcome = models.CharField(max_length=32, blank=True)
    # For review steps: the policy version, the cell and the action the gate chose.
    gate = models.JSONField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["case", "status"], name="steprun_case_status")]

    def __str__(self) -> str:
        suffix = " (compensation)" if self.is_compensation else ""
        return f"{self.step_id}{suffix} of {self.case_id}: {self.status}"

    def move_to(self, status: str) -> None:
        if status not in STEP_TRANSITIONS.get(self.status, frozenset()):
            raise InvalidTransition(f"a step run cannot go from {self.status!r} to {status!r}")
        self.status = status


class DeadLetter(models.Model):
    step_run = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="dead_letters")
    error_type = models.CharField(max_length=200)
    message = models.TextField()
    traceback = models.TextField(blank=True)
    attempts = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    replayed_at = models.DateTimeField(null=True, blank=True)
    replayed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"dead letter {self.pk}: {self.error_type} after {self.attempts} attempts"


class TimerKind(models.TextChoices):
    RETRY = "retry"  # run a pending step run again
    TIMEOUT = "timeout"  # a running attempt took too long
    WAIT = "wait"  # a wait step's timer
    SLA = "sla"  # a hook for routing's SLA clocks


class Timer(models.Model):
    """A durable timer: fired by the beat sweep (and a countdown) exactly once."""

    kind = models.CharField(max_length=16, choices=TimerKind.choices)
    due_at = models.DateTimeField()
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="timers")
    step_run = models.ForeignKey(
        StepRun, null=True, blank=True, on_delete=models.CASCADE, related_name="timers"
    )
    data: Any = models.JSONField(default=dict, blank=True)
    fired_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["due_at"],
                name="timer_pending_due",
                condition=models.Q(fired_at__isnull=True, cancelled_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} timer due {self.due_at:%Y-%m-%d %H:%M:%S}"


class OutboxEvent(models.Model):
    """An event written with the change it announces; the relay publishes it at least once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    topic = models.CharField(max_length=64)
    case = models.ForeignKey(
        Case, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    correlation_id = models.CharField(max_length=64, blank=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(
                fields=["created_at"],
                name="outbox_unpublished",
                condition=models.Q(published_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.topic} {self.id}"


class BreakerState(models.TextChoices):
    CLOSED = "closed"
    OPEN = "open"


class CircuitBreaker(models.Model):
    """Per handler: after N consecutive failures it opens for a cool-down."""

    handler = models.CharField(max_length=100, primary_key=True)
    state = models.CharField(
        max_length=8, choices=BreakerState.choices, default=BreakerState.CLOSED
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    opened_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"breaker {self.handler}: {self.state}"


class ProcessedEvent(models.Model):
    """Which consumer has handled which outbox event: at-least-once in, once in effect."""

    consumer = models.CharField(max_length=64)
    event_id = models.UUIDField()
    processed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["consumer", "event_id"], name="processed_event_once"),
        ]

    def __str__(self) -> str:
        return f"{self.consumer} handled {self.event_id}"


__all__ = [
    "CASE_TRANSITIONS",
    "FINISHED_CASE_STATES",
    "STEP_TRANSITIONS",
    "BreakerState",
    "Case",
    "CaseStatus",
    "CircuitBreaker",
    "DeadLetter",
    "Impact",
    "InvalidTransition",
    "OutboxEvent",
    "ProcessedEvent",
    "StepRun",
    "StepStatus",
    "Timer",
    "TimerKind",
    "Workflow",
    "check_case_transition",
]
