"""The workforce planning tab under /dashboard/planning/, for managers and admins.

The page shows each queue's Erlang C staffing need per shift next to the reviewers on
shift, and the Little's law check; its what-if form answers with htmx (a partial) or,
without JavaScript, with the whole page. Reads go through metrics.planning.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from accounts.decorators import managers_only
from config.htmx import HtmxHttpRequest
from metrics import erlang, planning

TEMPLATE = "metrics/planning.html"

View = Callable[..., HttpResponse]


class _MarksInvalidFields(forms.Form):
    """Marks fields with errors for assistive technology, pointing at their message."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.is_bound:
            for name in self.errors:
                if name in self.fields:
                    self.fields[name].widget.attrs.update(
                        {"aria-invalid": "true", "aria-describedby": f"{self[name].auto_id}-error"}
                    )


def _percent(label: str, **kwargs: Any) -> forms.FloatField:
    return forms.FloatField(label=label, widget=forms.NumberInput(attrs={"step": "any"}), **kwargs)


class PlanOptionsForm(_MarksInvalidFields):
    """The page's choice: the service level the staffing must reach."""

    service_level = _percent("Service level (%)", required=False)

    def clean_service_level(self) -> float:
        value = self.cleaned_data.get("service_level")
        if value is None:
            return planning.DEFAULT_SERVICE_LEVEL
        if not 0 < value < 100:
            raise forms.ValidationError(
                "Service level must be above 0 and below 100 % "
                "(no finite staff decides every item in time)."
            )
        return value / 100


UNITS = {"minutes": dt.timedelta(minutes=1), "hours": dt.timedelta(hours=1)}


class WhatIfForm(_MarksInvalidFields):
    """A hypothetical queue: arrivals, handle time, SLA target, service level, and
    optionally an occupancy cap and shrinkage."""

    prefix = "whatif"

    arrival_rate = forms.FloatField(
        label="Arrivals per hour", widget=forms.NumberInput(attrs={"step": "any", "min": "0"})
    )
    handle_time = forms.FloatField(
        label="Handle time (minutes)", widget=forms.NumberInput(attrs={"step": "any"})
    )
    target = forms.FloatField(label="SLA target", widget=forms.NumberInput(attrs={"step": "any"}))
    target_unit = forms.ChoiceField(
        label="Target unit", choices=[(u, u) for u in UNITS], initial="hours"
    )
    service_level = _percent("Service level (%)")
    max_occupancy = _percent(
        "Occupancy cap (%)", required=False, help_text="blank: no cap on how busy people are"
    )
    shrinkage = _percent(
        "Shrinkage (%)",
        required=False,
        help_text="time lost to breaks, meetings, absence; blank: none",
    )

    def clean_arrival_rate(self) -> float:
        value: float = self.cleaned_data["arrival_rate"]
        if value < 0:
            raise forms.ValidationError("Arrivals per hour must not be negative.")
        return value

    def clean_handle_time(self) -> float:
        value: float = self.cleaned_data["handle_time"]
        if value <= 0:
            raise forms.ValidationError("Handle time must be above 0 minutes.")
        return value

    def clean_target(self) -> float:
        value: float = self.cleaned_data["target"]
        if value <= 0:
            raise forms.ValidationError("The SLA target must be above 0.")
        return value

    def clean_service_level(self) -> float:
        value: float = self.cleaned_data["service_level"]
        if not 0 < value < 100:
            raise forms.ValidationError(
                "Service level must be above 0 and below 100 % "
                "(no finite staff decides every item in time)."
            )
        return value / 100

    def clean_max_occupancy(self) -> float | None:
        value = self.cleaned_data.get("max_occupancy")
        if value is None:
            return None
        if not 0 < value <= 100:
            raise forms.ValidationError("Occupancy cap must be above 0 and at most 100 %.")
        return value / 100

    def clean_shrinkage(self) -> float:
        value = self.cleaned_data.get("shrinkage")
        if value is None:
            return 0.0
        if not 0 <= value < 100:
            raise forms.ValidationError("Shrinkage must be at least 0 and below 100 %.")
        return value / 100

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        rate, handle = data.get("arrival_rate"), data.get("handle_time")
        if rate is None or handle is None:
            return data
        load = rate * handle / 60
        if load > erlang.MAX_LOAD:
            self.add_error(
                "arrival_rate",
                f"Arrivals per hour times handle time keep more than {erlang.MAX_LOAD:,.0f} "
                "reviewers busy at once; that is beyond what this planner sizes.",
            )
        elif data.get("max_occupancy") and load / data["max_occupancy"] > erlang.MAX_AGENTS:
            self.add_error(
                "max_occupancy",
                f"At this cap more than {erlang.MAX_AGENTS:,} reviewers would be needed; "
                "raise the cap.",
            )
        return data

    def answer(self) -> planning.WhatIf:
        data = self.cleaned_data
        return planning.what_if(
            arrival_rate=data["arrival_rate"],
            handle_time=dt.timedelta(minutes=data["handle_time"]),
            target=data["target"] * UNITS[data["target_unit"]],
            service_level=data["service_level"],
            max_occupancy=data["max_occupancy"],
            shrinkage=data["shrinkage"],
        )


def _options(request: HttpRequest) -> PlanOptionsForm:
    """The page's choices from the query string; a blank one shows its default."""
    data = request.GET.copy()
    if not data.get("service_level"):
        data["service_level"] = f"{planning.DEFAULT_SERVICE_LEVEL * 100:g}"
    return PlanOptionsForm(data)


def _whatif_initial(service_level: float) -> dict[str, Any]:
    return {
        "arrival_rate": 6,
        "handle_time": planning.DEFAULT_HANDLE_TIME / dt.timedelta(minutes=1),
        "target": planning.DEFAULT_TARGET / dt.timedelta(hours=1),
        "target_unit": "hours",
        "service_level": round(service_level * 100, 2),
        "max_occupancy": round(planning.DEFAULT_MAX_OCCUPANCY * 100),
        "shrinkage": 0,
    }


def _page(
    request: HtmxHttpRequest,
    *,
    options: PlanOptionsForm,
    whatif: WhatIfForm | None = None,
    result: planning.WhatIf | None = None,
    status: int = 200,
    partial: str = "",
) -> HttpResponse:
    """The page, or one partial of it, with the plan at the chosen service level (none
    when that choice is invalid: 400)."""
    context: dict[str, Any] = {
        "options": options,
        "default_max_occupancy_percent": round(planning.DEFAULT_MAX_OCCUPANCY * 100),
        "result": result,
        "weeks": planning.ARRIVAL_WEEKS,
    }
    service_level = planning.DEFAULT_SERVICE_LEVEL
    if options.is_valid():
        service_level = options.cleaned_data["service_level"]
        context["plan"] = planning.workforce_plan(now=timezone.now(), service_level=service_level)
    else:
        status = 400
    context["whatif"] = whatif or WhatIfForm(initial=_whatif_initial(service_level))
    template = f"{TEMPLATE}#{partial}" if partial else TEMPLATE
    return render(request, template, context, status=status)


@require_GET
@managers_only
@vary_on_headers("HX-Request")  # the same URL answers a partial to htmx: keep caches apart
def planning_page(request: HtmxHttpRequest) -> HttpResponse:
    """Per queue: reviewers needed per shift against those on shift; Little's law."""
    return _page(request, options=_options(request), partial="plan" if request.htmx else "")


@require_POST
@managers_only
def planning_whatif(request: HtmxHttpRequest) -> HttpResponse:
    """Staffing for the posted what-if: a partial for htmx, else the whole page.
    Invalid input answers 400 with the field at fault marked and named."""
    form = WhatIfForm(request.POST)
    result = form.answer() if form.is_valid() else None
    status = 200 if result is not None else 400
    if request.htmx:
        return render(
            request, f"{TEMPLATE}#whatif", {"whatif": form, "result": result}, status=status
        )
    return _page(request, options=_options(request), whatif=form, result=result, status=status)
