from django import forms

from audit.models import AuditAction


class EventSearchForm(forms.Form):
    case_id = forms.CharField(required=False, max_length=64, label="Case")
    actor = forms.CharField(
        required=False, max_length=150, label="Actor (username, client or worker)"
    )
    action = forms.ChoiceField(
        required=False, choices=[("", "Any action"), *AuditAction.choices], label="Action"
    )
    since = forms.DateTimeField(
        required=False,
        label="From",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    until = forms.DateTimeField(
        required=False,
        label="Until",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if self.is_bound:
            for name in self.errors:
                if name in self.fields:
                    self.fields[name].widget.attrs.update(
                        {"aria-invalid": "true", "aria-describedby": f"id_{name}-error"}
                    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            self.add_error("until", "“Until” must be later than “From”.")
        return data
