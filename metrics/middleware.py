"""Counts every request and how long it took, for /metrics."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from metrics.prometheus import observe_request


class RequestMetricsMiddleware:
    """Times each request through the whole stack and records it by method, route name
    and status. Placed first in MIDDLEWARE, so redirects and refusals made by other
    middleware count too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        observe_request(request, response.status_code, time.perf_counter() - started)
        return response
