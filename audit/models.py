"""Audit events: append-only, hash-chained, one chain per case plus a global chain.

The database refuses UPDATE and DELETE on these tables (triggers installed by
migration 0002); the model and its queryset refuse them too, so a slip in our own
code fails loudly instead of reaching the trigger.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove an audit record."""


class AuditAction(models.TextChoices):
    """The fixed vocabulary of audited actions. Each app adds its own here, in one place."""

    # Cases and steps (orchestration)
    CASE_SUBMITTED = "case.submitted"
    CASE_CANCELLED = "case.cancelled"
    CASE_COMPLETED = "case.completed"
    CASE_SIGNALLED = "case.signalled"
    STEP_STARTED = "step.started"
    STEP_SUCCEEDED = "step.succeeded"
    STEP_FAILED = "step.failed"
    STEP_RETRIED = "step.retried"
    STEP_TIMED_OUT = "step.timed_out"
    STEP_DEAD_LETTERED = "step.dead_lettered"
    STEP_REPLAYED = "step.replayed"
    STEP_COMPENSATED = "step.compensated"
    GATE_DECIDED = "gate.decided"
    QA_RECORDED = "qa.recorded"
    WORKFLOW_PUBLISHED = "workflow.published"
    # Work items and decisions (routing, review)
    ITEM_ENQUEUED = "item.enqueued"
    ITEM_CLAIMED = "item.claimed"
    ITEM_RELEASED = "item.released"
    ITEM_REASSIGNED = "item.reassigned"
    ITEM_ESCALATED = "item.escalated"
    ITEM_SNOOZED = "item.snoozed"
    ITEM_EDITED = "item.edited"
    DECISION_RECORDED = "decision.recorded"
    SLA_WARNED = "sla.warned"
    SLA_BREACHED = "sla.breached"
    # Configuration
    POLICY_CHANGED = "policy.changed"
    QUEUE_CHANGED = "queue.changed"
    SLA_POLICY_CHANGED = "sla_policy.changed"
    # People and access
    USER_CREATED = "user.created"
    USER_ROLES_CHANGED = "user.roles_changed"
    USER_SIGNED_IN = "user.signed_in"
    USER_SIGNED_OUT = "user.signed_out"
    USER_SIGN_IN_FAILED = "user.sign_in_failed"
    CLIENT_CREATED = "client.created"
    CLIENT_REVOKED = "client.revoked"
    WEBHOOK_REGISTERED = "webhook.registered"
    WEBHOOK_REPLAYED = "webhook.replayed"
    WEBHOOK_REMOVED = "webhook.removed"
    # Evidence
    EVIDENCE_EXPORTED = "evidence.exported"


class ActorKind(models.TextChoices):
    USER = "user"
    API_CLIENT = "api_client"
    SYSTEM = "system"


GLOBAL_CHAIN = "global"


class AppendOnlyQuerySet(models.QuerySet["Any"]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only; update refused.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only; delete refused.")


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} {self.pk} is append-only.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError(f"{type(self).__name__} {self.pk} is append-only.")


class AuditEvent(AppendOnlyModel):
    """One audited change. `id` is the global sequence; (chain, chain_seq) its chain place."""

    occurred_at = models.DateTimeField(db_index=True)
    chain = models.CharField(max_length=80)
    chain_seq = models.PositiveBigIntegerField()
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    # No foreign keys: an audit row must outlive the user, client or case it names.
    actor_id = models.CharField(max_length=64, blank=True)
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=48, choices=AuditAction.choices)
    object_type = models.CharField(max_length=80, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    case_id = models.CharField(max_length=64, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    client_ip = models.CharField(max_length=45, blank=True)
    reason = models.TextField(blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        default_permissions = ("view",)
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "chain_seq"], name="audit_event_chain_seq"),
        ]
        indexes = [
            models.Index(fields=["case_id", "id"], name="audit_event_case"),
            models.Index(fields=["actor_name", "id"], name="audit_event_actor"),
            models.Index(fields=["action", "id"], name="audit_event_action"),
            models.Index(fields=["correlation_id"], name="audit_event_correlation"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} by {self.actor_name}"

    @property
    def sequence(self) -> int | None:
        return self.pk

    def hashed_fields(self) -> dict[str, Any]:
        from audit.hashing import HASHED_FIELDS

        return {name: getattr(self, name) for name in HASHED_FIELDS}


class AuditCheckpoint(AppendOnlyModel):
    """A digest over every chain head at one moment, itself chained to the previous one.

    Removing a whole chain, or the newest events of one, leaves every remaining link
    intact; comparing the heads against a checkpoint is what finds that.
    """

    created_at = models.DateTimeField()
    max_event_id = models.BigIntegerField()
    chain_count = models.PositiveIntegerField()
    event_count = models.PositiveBigIntegerField()
    heads_digest = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        default_permissions = ("view",)
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"checkpoint #{self.pk} at event {self.max_event_id}"

    def hashed_fields(self) -> dict[str, Any]:
        return {
            "created_at": self.created_at,
            "max_event_id": self.max_event_id,
            "chain_count": self.chain_count,
            "event_count": self.event_count,
            "heads_digest": self.heads_digest,
            "prev_hash": self.prev_hash,
        }
