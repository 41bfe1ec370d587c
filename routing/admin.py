"""Admin for routing configuration: queues, ordered rules, skills, people, SLAs.

Every save goes through `config_save`, which validates, keeps the history and writes
the audit event with the reason the admin gave.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from audit.admin_mixins import REASON_FIELD, ChangeReasonAdminMixin
from routing import services
from routing.models import (
    BusinessCalendar,
    Queue,
    ReviewerProfile,
    RoutingRule,
    Skill,
    SLAPolicy,
    WorkItem,
)


class AuditedConfigAdmin(ChangeReasonAdminMixin, admin.ModelAdmin):
    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        services.config_save(obj=obj, actor=request.user, reason=form.cleaned_data[REASON_FIELD])

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.config_delete(obj=obj, actor=request.user, reason="deleted in the admin")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


class AuditedAdmin(AuditedConfigAdmin, SimpleHistoryAdmin):
    pass


@admin.register(Queue)
class QueueAdmin(AuditedAdmin):
    list_display = ("name", "title", "strategy", "wip_limit", "sla_policy", "owner")
    list_filter = ("strategy",)
    search_fields = ("name", "title")


@admin.register(RoutingRule)
class RuleAdmin(AuditedConfigAdmin):
    """The ordered rule list: the first active match wins, triage catches the rest."""

    list_display = ("order", "kind", "region", "skill", "workflow_slug", "queue", "active")
    list_display_links = ("order",)
    ordering = ("order", "id")


@admin.register(Skill)
class SkillAdmin(AuditedConfigAdmin):
    list_display = ("name", "title")
    list_display_links = ("name",)
    ordering = ("name",)


@admin.register(ReviewerProfile)
class ReviewerProfileAdmin(AuditedAdmin):
    list_display = ("user", "capacity", "on_shift", "absent_from", "absent_until", "delegate")
    list_filter = ("on_shift",)
    search_fields = ("user__username",)


@admin.register(SLAPolicy)
class SLAPolicyAdmin(AuditedAdmin):
    list_display = ("name", "target", "warn_at_percent", "idle_limit", "calendar")


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(AuditedAdmin):
    list_display = ("name", "region", "time_zone", "always_open", "opens_at", "closes_at")


@admin.register(WorkItem)
class WorkItemAdmin(SimpleHistoryAdmin):
    """Read-only: items change through routing and review, never by hand."""

    list_display = ("id", "kind", "queue", "priority", "state", "assignee", "enqueued_at", "due_at")
    list_filter = ("state", "kind", "queue")
    raw_id_fields = ("case", "step_run", "assignee")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
