"""Threshold policies: versioned confidence x impact grids, per workflow or per step."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from audit.history import history_user


class ThresholdPolicy(models.Model):
    """One version of the grid for a workflow (step_id "") or one review step of it.

    Versions are never edited: saving a change writes the next version, so every gate
    decision keeps pointing at the grid it used.
    """

    workflow_slug = models.SlugField(max_length=64)
    step_id = models.CharField(max_length=48, blank=True, help_text="blank: the whole workflow")
    version = models.PositiveIntegerField()
    edges = models.JSONField()
    cells = models.JSONField()
    sample_rates = models.JSONField()
    critical_auto_override = models.BooleanField(default=False)
    override_reason = models.TextField(blank=True)
    reason = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["workflow_slug", "step_id", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow_slug", "step_id", "version"], name="threshold_policy_version"
            ),
        ]
        verbose_name_plural = "threshold policies"

    def __str__(self) -> str:
        scope = f"{self.workflow_slug}/{self.step_id}" if self.step_id else self.workflow_slug
        return f"{scope} grid v{self.version}"


class QaFinding(models.Model):
    """A QA reviewer's check of one automatic approval the gate sampled."""

    step_run = models.ForeignKey(
        "orchestration.StepRun", on_delete=models.CASCADE, related_name="qa_findings"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    agrees = models.BooleanField(help_text="Does the reviewer agree with the automatic approval?")
    note = models.TextField(blank=True)
    # Copied from the gate so the metrics count per cell even after the policy changes.
    policy_version = models.PositiveIntegerField()
    cell = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["step_run", "reviewer"], name="qa_finding_once"),
        ]
        indexes = [models.Index(fields=["created_at"], name="qa_finding_created")]

    def __str__(self) -> str:
        verdict = "agrees" if self.agrees else "disagrees"
        return f"QA of {self.step_run_id} by {self.reviewer_id}: {verdict}"


__all__ = ["QaFinding", "ThresholdPolicy"]
