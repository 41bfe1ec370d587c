"""Structured logs: one JSON object per line, with the correlation id of the case or
request being handled, so a case can be followed across web, workers and beat."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class ContextFilter(logging.Filter):
    """Adds correlation_id, request_id and trace_id from the audit context to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        from audit.context import current

        ctx = current()
        for name in ("correlation_id", "request_id", "trace_id"):
            if not getattr(record, name, ""):
                setattr(record, name, getattr(ctx, name, ""))
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
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)
