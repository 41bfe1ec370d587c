from django import forms

AGREE = "agree"
DISAGREE = "disagree"


class QaFindingForm(forms.Form):
    """A QA reviewer's verdict on a sampled automatic approval.

    The form only parses; whether a note is needed is the service's rule
    (`qa_finding_record` refuses a disagreement without one), so it holds for every
    caller, not just this page.
    """

    verdict = forms.ChoiceField(
        label="Was the automatic approval right?",
        choices=[
            (AGREE, "Agree: the automatic approval was right"),
            (DISAGREE, "Disagree: this case should not have been approved automatically"),
        ],
        widget=forms.RadioSelect,
        error_messages={"required": "Choose whether you agree with the automatic approval."},
    )
    note = forms.CharField(
        label="Note",
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Required when you disagree: say what is wrong with the approval.",
        strip=True,
    )

    @property
    def agrees(self) -> bool:
        return bool(self.cleaned_data["verdict"] == AGREE)
