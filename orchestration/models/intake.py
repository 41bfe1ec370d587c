"""Intake: the API clients that submit cases, their idempotency keys, their webhooks."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


class Scope(models.TextChoices):
    CASES_WRITE = "cases:write", "Submit cases"
    CASES_READ = "cases:read", "Read its own cases"
    CASES_CANCEL = "cases:cancel", "Cancel its own cases"
    SIGNALS_WRITE = "signals:write", "Send signals to its own cases"
    WEBHOOKS_MANAGE = "webhooks:manage", "Register and remove its webhook endpoints"


TOKEN_PREFIX = "arb_"  # noqa: S105  (a public prefix, not a secret)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class ApiClient(models.Model):
    """A system that submits cases. Its token is shown once and stored only hashed."""

    name = models.CharField(max_length=100, unique=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_hint = models.CharField(max_length=12, editable=False, help_text="the token's start")
    scopes = models.JSONField(default=list)
    # Workflow slugs it may submit to; ["*"] for every published workflow.
    allowed_workflows = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def may_use(self, workflow_slug: str) -> bool:
        return "*" in self.allowed_workflows or workflow_slug in self.allowed_workflows


class IdempotencyRecord(models.Model):
    """One Idempotency-Key of one client: the request it stood for and its answer."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    completed = models.BooleanField(default=False)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "key"], name="idempotency_client_key"),
        ]

    def __str__(self) -> str:
        return f"{self.client_id}:{self.key}"


class WebhookEndpoint(models.Model):
    """Where a client wants events POSTed, signed with this endpoint's secret."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=100, default="", blank=True)
    # Event topics, e.g. ["case.approved", "case.rejected"]; ["*"] for all.
    event_types = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["client", "url"]

    def __str__(self) -> str:
        return f"{self.client} -> {self.url}"

    def wants(self, topic: str) -> bool:
        return "*" in self.event_types or topic in self.event_types


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class WebhookDelivery(models.Model):
    """One event for one endpoint, tried until delivered or given up (dead)."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.UUIDField()
    topic = models.CharField(max_length=64)
    body = models.JSONField()
    status = models.CharField(
        max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Retries stop here (24 h after the first try, or after a replay) and it goes dead.
    give_up_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_delivery_once"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=models.Q(status="pending"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.topic} {self.event_id} -> {self.endpoint_id}: {self.status}"


class WebhookAttempt(models.Model):
    """The delivery log: every POST made, with what came back."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["at"]

    def __str__(self) -> str:
        return f"attempt at {self.at:%Y-%m-%d %H:%M:%S}: {self.status_code or self.error}"


__all__ = [
    "TOKEN_PREFIX",
    "ApiClient",
    "DeliveryStatus",
    "IdempotencyRecord",
    "Scope",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "hash_token",
    "new_token",
]
