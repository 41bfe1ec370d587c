"""Admin support for "why": every change made in the Django admin must say why.

The reason lands on the history row (django-simple-history's change reason) and on
the audit events the save produces. Apps mix this into the admin of any model with
history: `class QueueAdmin(ChangeReasonAdminMixin, SimpleHistoryAdmin)`.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

REASON_FIELD = "change_reason"


class ChangeReasonAdminMixin(admin.ModelAdmin):
    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm]:
        # Declared on the base form, so the admin's form factory accepts the extra field.
        default = getattr(self, "add_form", self.form) if obj is None else self.form
        base = kwargs.pop("form", default)
        reason = forms.CharField(
            label="Reason for this change",
            max_length=500,
            help_text="Required. Kept in the history and the audit trail.",
            widget=forms.TextInput(attrs={"size": 80}),
        )
        with_reason = type(base.__name__, (base,), {REASON_FIELD: reason})
        return super().get_form(request, obj, change=change, form=with_reason, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = list(super().get_fieldsets(request, obj))
        if self.has_change_permission(request, obj) or obj is None:
            fieldsets.append(("Why", {"fields": (REASON_FIELD,)}))
        return fieldsets

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        obj._change_reason = form.cleaned_data[REASON_FIELD]
        super().save_model(request, obj, form, change)
