"""What reviewers decide: verdicts with their rationale, and the edits behind them.

Four-eyes rules hold in the database too: a checker's decision names the maker and
the case's submitter and must be neither; one decision per role per round of an
item, so a double-submitted verdict records one decision.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class DecisionRole(models.TextChoices):
    SINGLE = "single", "Reviewer"
    MAKER = "maker", "Maker"
    CHECKER = "checker", "Checker"


class Verdict(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"
    RETURN = "return", "Return for rework"
    ESCALATE = "escalate", "Escalate"


class Decision(models.Model):
    work_item = models.ForeignKey(
        "routing.WorkItem", on_delete=models.PROTECT, related_name="decisions"
    )
    case = models.ForeignKey(
        "orchestration.Case", on_delete=models.PROTECT, related_name="decisions"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    role = models.CharField(max_length=8, choices=DecisionRole.choices)
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    # [{"field": ..., "before": ..., "after": ...}] against the case's proposed values
    edits = models.JSONField(default=list, blank=True)
    rationale = models.TextField()
    reasons = models.JSONField(default=list, blank=True, help_text="quick-pick reasons")
    return_to = models.CharField(max_length=16, blank=True)
    # For a checker: the maker and the case's submitter, neither of whom may check.
    maker = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    submitter = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    agrees_with_maker = models.BooleanField(null=True, blank=True)
    # Each escalation or dispute opens a new round in which the item is decided again.
    round = models.PositiveSmallIntegerField(default=0)
    time_spent = models.DurationField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["created_at"], name="decision_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["work_item", "role", "round"], name="decision_one_per_role_and_round"
            ),
            models.CheckConstraint(
                condition=~models.Q(rationale=""), name="decision_has_a_rationale"
            ),
            models.CheckConstraint(
                condition=~models.Q(role="checker")
                | (models.Q(maker__isnull=False) & ~models.Q(maker=models.F("reviewer"))),
                name="decision_checker_is_not_the_maker",
            ),
            models.CheckConstraint(
                condition=~models.Q(role="checker")
                | models.Q(submitter__isnull=True)
                | ~models.Q(submitter=models.F("reviewer")),
                name="decision_checker_is_not_the_submitter",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_role_display()} {self.verdict} on item {self.work_item_id}"


class ItemEdit(models.Model):
    """One change a reviewer made to a proposed field, kept in order; applied to the
    case when the verdict approves."""

    work_item = models.ForeignKey(
        "routing.WorkItem", on_delete=models.CASCADE, related_name="edits"
    )
    field = models.CharField(max_length=100)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=200, blank=True, help_text="e.g. a suggestion applied")
    editor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.field}: {self.before!r} -> {self.after!r}"
