"""Structured logs: one JSON object per line, with the correlation id of the case or
request being handled, so a case can be followed across web, workers and beat.

Each line carries request_id, correlation_id, trace_id and span_id (while a span is
active, see config/tracing.py), and `user` (a signed-in person's username) or `client`
(an API client's name). Logs never carry secrets or payloads: extra fields whose names
look like either are redacted, and SQL with its parameters is not logged (LOG_SQL).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

if TYPE_CHECKING:
    from audit.context import AuditContext

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Extra fields that would put a credential or a case's content into the logs.
_SECRET_FIELD = re.compile(
    r"pass(word)?|secret|token|authori[sz]ation|api_?key|cookie|session|payload|body",
    re.IGNORECASE,
)
REDACTED = "[redacted]"

_request: ContextVar[HttpRequest | None] = ContextVar("arbiter_log_request", default=None)


class LogContextMiddleware:
    """Lets log lines written while a request is handled name its user or API client.

    API clients authenticate in the view (DRF), after the audit context is set, so the
    request itself is kept and asked at logging time.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def principal(ctx: AuditContext) -> tuple[str, str]:
    """(username, API client name) of whoever the code running now acts for; "" if unknown."""
    from audit.models import ActorKind

    request = _request.get()
    user = getattr(request, "user", None)
    if isinstance(user, SimpleLazyObject) and vars(user).get("_wrapped", empty) is empty:
        user = None  # not loaded yet: a log line must not cost a query
    if user is not None and user.is_authenticated:
        # orchestration.api.ClientPrincipal: the request.user of a token request
        client = getattr(user, "client", None)
        if client is not None:
            return "", str(client.name)
        return user.get_username(), ""
    actor = ctx.actor
    if actor is not None and actor.kind == ActorKind.USER:
        return actor.name, ""
    if actor is not None and actor.kind == ActorKind.API_CLIENT:
        return "", actor.name
    return "", ""


class ContextFilter(logging.Filter):
    """Adds correlation_id, request_id, trace_id, span_id and user or client to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        from audit.context import current
        from config import tracing

        ctx = current()
        for name in ("correlation_id", "request_id", "trace_id"):
            if not getattr(record, name, ""):
                setattr(record, name, getattr(ctx, name, ""))
        if not getattr(record, "span_id", ""):
            record.span_id = tracing.current_ids()[1]
        user, client = principal(ctx)
        if user and not getattr(record, "user", ""):
            record.user = user
        if client and not getattr(record, "client", ""):
            record.client = client
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and value not in ("", None):
                doc[key] = REDACTED if _SECRET_FIELD.search(key) else value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)
