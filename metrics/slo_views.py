"""The SLO tab under /dashboard/slos/, for managers and admins: per SLO its attainment
over the window, the error budget left and the burn rates of both alert pairs, with
the alerts open now. Reads go through metrics.slo; admins edit SLOs in the admin."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from accounts.decorators import managers_only
from config.htmx import HtmxHttpRequest
from metrics import slo


@require_GET
@managers_only
@vary_on_headers("HX-Request")  # the same URL answers a partial to htmx: keep caches apart
def slos_page(request: HtmxHttpRequest) -> HttpResponse:
    """Every active SLO's status now; the summary refreshes itself every minute."""
    now = timezone.now()
    context = {
        "now": now,
        "statuses": slo.slo_statuses(now=now),
        "recent_alerts": list(slo.recent_alerts()),
    }
    if request.htmx:
        return render(request, "metrics/slos.html#statuses", context)
    return render(request, "metrics/slos.html", context)
