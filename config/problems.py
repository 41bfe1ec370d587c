"""RFC 9457 problem details: the one error shape of the API.

{"type": "https://arbiter.example/problems/validation", "title": "Invalid request",
 "status": 400, "detail": "...", "instance": "/api/v1/cases/", "errors": {"field": [...]}}
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import ApplicationError

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://arbiter.example/problems/"

_TITLES = {
    400: ("validation", "Invalid request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict with the current state"),
    413: ("too-large", "Request too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("unprocessable", "Unprocessable request"),
    429: ("throttled", "Too many requests"),
    500: ("server-error", "Internal server error"),
}


def problem(
    status_code: int,
    detail: str,
    *,
    instance: str = "",
    errors: dict[str, Any] | None = None,
    kind: str = "",
) -> dict[str, Any]:
    slug, title = _TITLES.get(status_code, ("error", "Error"))
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (kind or slug),
        "title": title,
        "status": status_code,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return body


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"field.path": [messages]}: sources.0.url, payload."""
    flat: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = str(key) if not prefix else f"{prefix}.{key}"
            for path, messages in _flatten(value, name).items():
                flat.setdefault(path, []).extend(messages)
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, dict | list):
                nested = f"{prefix}.{index}" if prefix else str(index)
                for path, messages in _flatten(item, nested).items():
                    flat.setdefault(path, []).extend(messages)
            else:
                flat.setdefault(prefix or "non_field_errors", []).append(str(item))
    else:
        flat.setdefault(prefix or "non_field_errors", []).append(str(detail))
    return flat


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler, answering every error as problem details."""
    request = context.get("request")
    instance = request.path if request is not None else ""
    if isinstance(exc, ApplicationError):
        errors = {exc.field: [exc.message]} if exc.field else None
        return _response(problem(exc.status, exc.message, instance=instance, errors=errors))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's 500 handler answers (problem JSON for /api/)
    if not isinstance(exc, exceptions.APIException):
        return response
    errors = None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        detail = "The request has invalid fields; see errors."
    else:
        detail = str(exc.detail) if not isinstance(exc.detail, dict | list) else str(exc)
    body = problem(response.status_code, detail, instance=instance, errors=errors)
    new = _response(body, status_code=response.status_code)
    for header in ("Retry-After", "WWW-Authenticate", "Allow"):
        if header in response:
            new[header] = response[header]
    return new


def _response(body: dict[str, Any], status_code: int | None = None) -> Response:
    return Response(body, status=status_code or body["status"], content_type=PROBLEM_JSON)


def json_problem(request: HttpRequest, status_code: int, detail: str) -> JsonResponse:
    """For Django's own 404/500 handlers under /api/."""
    return JsonResponse(
        problem(status_code, detail, instance=request.path),
        status=status_code,
        content_type=PROBLEM_JSON,
    )


__all__ = ["PROBLEM_JSON", "exception_handler", "json_problem", "problem", "status"]
