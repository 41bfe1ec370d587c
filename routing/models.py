"""Queues, reviewer profiles, routing rules and the work items people claim.

Claiming is the hot path: one short transaction that locks the oldest eligible row
of the highest priority class with SKIP LOCKED (PostgreSQL), so no item is ever
held by two people. The partial index below is what that query walks.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from audit.history import history_user


class Queue(models.Model):
    """A queue of human work. Who may work it is a guardian object permission
    (`routing.work_on_queue`) on the queue."""

    name = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    regions = models.JSONField(default=list, blank=True, help_text="empty: any region")
    required_skills = models.JSONField(default=list, blank=True)
    wip_limit = models.PositiveIntegerField(
        default=0, help_text="claimed items at once; 0: no limit"
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
    on_shift = models.BooleanField(default=True)
    history = HistoricalRecords(get_user=history_user)

    def __str__(self) -> str:
        return f"profile of {self.user}"


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
    claimed_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    reassignment_count = models.PositiveIntegerField(default=0)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        indexes = [
            models.Index(
                fields=["queue", "priority", "enqueued_at"],
                name="workitem_claimable",
                condition=models.Q(state="queued"),
            ),
            models.Index(fields=["assignee", "state"], name="workitem_assignee_state"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.case_id} in {self.queue_id}: {self.state}"
