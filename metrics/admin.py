"""Admin for SLOs: admins define them here; every save and delete goes through the
metrics services, which validate, keep the history and audit the reason given.
Alerts are read-only: the evaluator opens and clears them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from audit.admin_mixins import REASON_FIELD, ChangeReasonAdminMixin
from metrics import slo_services
from metrics.models import SLO, SLOAlert


@admin.register(SLO)
class SLOAdmin(ChangeReasonAdminMixin, SimpleHistoryAdmin):
    list_display = ("name", "sli", "objective", "window_days", "owner", "active")
    list_filter = ("sli", "active")
    search_fields = ("name", "description")
    raw_id_fields = ("owner",)
    fieldsets = (
        (None, {"fields": ("name", "description", "owner", "active")}),
        (
            "What is measured",
            {"fields": ("sli", "within_hours", "impact", "queue", "workflow_slug", "handler")},
        ),
        ("Objective", {"fields": ("objective", "window_days")}),
        (
            "Burn-rate alerts",
            {
                "fields": ("fast_window", "fast_burn_rate", "slow_window", "slow_burn_rate"),
                "description": "Each alert fires when its long window and a short window "
                "of 1/12 its length both burn the error budget faster than its rate. "
                "Defaults follow the Google SRE workbook: 1 h at 14.4x, 6 h at 6x.",
            },
        ),
    )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        slo_services.slo_save(slo=obj, actor=request.user, reason=form.cleaned_data[REASON_FIELD])

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        slo_services.slo_delete(slo=obj, actor=request.user, reason="deleted in the admin")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(SLOAlert)
class SLOAlertAdmin(admin.ModelAdmin):
    """Read-only: alerts change only through the evaluator."""

    list_display = ("slo", "severity", "opened_at", "cleared_at", "long_burn_rate", "threshold")
    list_filter = ("severity", "slo")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
