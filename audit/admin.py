from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditCheckpoint, AuditEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """Audit records can be read here and never added, changed or deleted."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "occurred_at",
        "actor_name",
        "action",
        "object_type",
        "object_id",
        "case_id",
    )
    list_filter = ("action", "actor_kind")
    search_fields = ("=case_id", "=actor_name", "=correlation_id", "=object_id")
    show_full_result_count = False


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "max_event_id",
        "chain_count",
        "event_count",
        "heads_digest",
    )
