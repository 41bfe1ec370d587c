from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from audit.admin_mixins import ChangeReasonAdminMixin
from config.errors import ApplicationError
from orchestration import intake, services
from orchestration.definition import InvalidDefinition, parse
from orchestration.models import (
    ApiClient,
    Case,
    CircuitBreaker,
    DeadLetter,
    OutboxEvent,
    StepRun,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    Workflow,
)


class WorkflowForm(forms.ModelForm):
    """Refuses a definition that does not validate, naming every problem."""

    class Meta:
        model = Workflow
        fields = ("slug", "version", "title", "definition")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        document = data.get("definition")
        if document is not None:
            try:
                parsed = parse(document)
            except InvalidDefinition as exc:
                self.add_error("definition", list(exc.problems))
            else:
                if data.get("slug") and parsed.slug != data["slug"]:
                    self.add_error("slug", f"the definition's slug is {parsed.slug!r}")
        return data


@admin.register(Workflow)
class WorkflowAdmin(ChangeReasonAdminMixin, SimpleHistoryAdmin):
    form = WorkflowForm
    list_display = ("slug", "version", "title", "published", "published_at")
    list_filter = ("published", "slug")
    actions = ["publish"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.published:  # a published version never changes
            return [f.name for f in self.model._meta.fields]
        return ["published", "published_at", "created_by"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or not obj.published)

    @admin.action(description="Publish the selected drafts", permissions=["change"])
    def publish(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        for workflow in queryset:
            try:
                services.workflow_publish(workflow=workflow, actor=request.user)
            except InvalidDefinition as exc:
                self.message_user(request, f"{workflow}: {exc}", messages.ERROR)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.WARNING)
            else:
                self.message_user(request, f"{workflow} published.", messages.SUCCESS)


class StepRunInline(admin.TabularInline):
    model = StepRun
    extra = 0
    can_delete = False
    fields = (
        "step_id",
        "kind",
        "handler",
        "is_compensation",
        "status",
        "attempt",
        "outcome",
        "last_error",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Case)
class CaseAdmin(SimpleHistoryAdmin):
    list_display = ("id", "workflow", "external_ref", "status", "outcome", "created_at")
    list_filter = ("status", "workflow__slug", "impact")
    search_fields = ("=id", "=external_ref", "=correlation_id")
    inlines = [StepRunInline]
    actions = ["cancel"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # cases come through the API (or seed_demo)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(
        description="Cancel the selected cases (runs compensations)", permissions=["change"]
    )
    def cancel(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        for case in queryset:
            try:
                services.case_cancel(case=case, actor=request.user, reason="cancelled in the admin")
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.WARNING)


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ("id", "step_run", "error_type", "attempts", "created_at", "replayed_at")
    list_filter = ("replayed_at",)
    readonly_fields = (
        "step_run",
        "error_type",
        "message",
        "traceback",
        "attempts",
        "created_at",
        "replayed_at",
        "replayed_by",
    )
    actions = ["replay"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Replay the selected dead letters", permissions=["change"])
    def replay(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        for letter in queryset:
            try:
                services.dead_letter_replay(
                    dead_letter=letter, actor=request.user, reason="replayed in the admin"
                )
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.WARNING)
            else:
                self.message_user(request, f"Dead letter {letter.pk} replayed.", messages.SUCCESS)


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = ("id", "topic", "case", "created_at", "published_at", "attempts", "last_error")
    list_filter = ("topic", "published_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(CircuitBreaker)
class CircuitBreakerAdmin(admin.ModelAdmin):
    list_display = ("handler", "state", "consecutive_failures", "opened_until", "updated_at")


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ("name", "token_hint", "scopes", "active", "created_at", "revoked_at")
    list_filter = ("active",)
    search_fields = ("name", "=token_hint")
    actions = ["revoke"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in self.model._meta.fields if f.name != "token_hash"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # clients come from `manage.py create_api_client`, which shows the token

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the audit trail keeps naming the client

    # permissions: an action is otherwise offered to anyone who may view the list.
    @admin.action(
        description="Revoke the selected clients (their tokens stop working)",
        permissions=["change"],
    )
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        for client in queryset:
            if not client.active:
                self.message_user(request, f"{client} was revoked already.", messages.WARNING)
                continue
            intake.api_client_revoke(
                client=client, actor=request.user, reason="revoked in the admin"
            )
            self.message_user(request, f"{client} revoked.", messages.SUCCESS)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ("client", "url", "event_types", "active", "created_at")
    list_filter = ("active", "client")
    # The signing secret is shown to the client once, never here.
    fields = ("client", "url", "event_types", "active", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # intake.webhook_endpoint_create makes the secret and audits it

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ("at", "status_code", "error", "duration_ms")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "topic",
        "event_id",
        "endpoint",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "created_at",
    )
    list_filter = ("status", "endpoint")
    search_fields = ("=event_id",)
    list_select_related = ("endpoint__client",)
    inlines = [WebhookAttemptInline]
    actions = ["replay"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Replay the selected dead deliveries", permissions=["change"])
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        for delivery in queryset:
            try:
                intake.webhook_replay(delivery=delivery, actor=request.user)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.WARNING)
            else:
                self.message_user(request, f"Delivery {delivery.pk} replayed.", messages.SUCCESS)
