"""Structured logs (config/logging.py): JSON lines that say which request, case, trace and
user or client they belong to, and never carry a secret or a case's payload."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.utils.functional import SimpleLazyObject
from opentelemetry.sdk.trace import TracerProvider

from audit.context import Actor, audit_context
from config import tracing
from config.logging import REDACTED, ContextFilter, JsonFormatter, LogContextMiddleware
from orchestration import intake, services
from orchestration.models import Case
from tests.orchestration.conftest import three_tasks

logger = logging.getLogger("arbiter.test")

SECRET_VALUE = "IBAN DE89 3704 0044 0532 0130 00"


class Lines:
    """The JSON lines logged during a test, as text and parsed."""

    def __init__(self) -> None:
        self.text: list[str] = []

    def named(self, message: str) -> dict[str, Any]:
        (line,) = [doc for doc in map(json.loads, self.text) if doc["message"] == message]
        return line


@pytest.fixture
def log_lines() -> Iterator[Lines]:
    """Every record any logger emits, at DEBUG, formatted as production formats it."""
    lines = Lines()

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.text.append(self.format(record))

    handler = Capture(level=logging.DEBUG)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def run_all_db(db, django_capture_on_commit_callbacks):
    """Call, then run what it enqueued on commit (eager Celery), to quiescence."""

    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


def serve(request: HttpRequest) -> HttpResponse:
    """A view behind the logging middleware that logs one line."""

    def view(request: HttpRequest) -> HttpResponse:
        logger.info("in the view")
        return HttpResponse()

    return LogContextMiddleware(view)(request)


def test_a_case_submission_logs_neither_its_payload_nor_the_token(log_lines, adam, run_all_db):
    services.workflow_load(document=three_tasks(), actor=adam)
    _, token = intake.api_client_create(name="erp", scopes=["cases:write"], actor=adam)
    submission = {
        "workflow": "three-tasks",
        "external_ref": "INV-7",
        "payload": {"vendor": "ACME GmbH", "amount": "1200.00", "iban": SECRET_VALUE},
    }
    api = Client(HTTP_AUTHORIZATION=f"Token {token}")
    # As if DEBUG were on: Django would log each SQL statement with its parameters.
    connection.force_debug_cursor = True
    try:
        response = run_all_db(
            api.post, "/api/v1/cases/", json.dumps(submission), content_type="application/json"
        )
        refused = Client(HTTP_AUTHORIZATION="Token not-a-real-token-but-a-secret").post(
            "/api/v1/cases/", json.dumps(submission), content_type="application/json"
        )
        invalid = api.post(
            "/api/v1/cases/",
            json.dumps(submission | {"workflow": "no-such-flow"}),
            content_type="application/json",
        )
    finally:
        connection.force_debug_cursor = False

    assert (response.status_code, refused.status_code, invalid.status_code) == (201, 401, 400)
    case = Case.objects.get(pk=response.json()["id"])
    assert case.status == "approved"
    everything = "\n".join(log_lines.text)
    assert "case submitted" in everything and "Unauthorized" in everything
    for secret in (SECRET_VALUE, "DE89", token, token[8:], "not-a-real-token"):
        assert secret not in everything
    submitted = log_lines.named("case submitted")
    assert submitted["client"] == "erp"
    assert submitted["correlation_id"] == str(case.correlation_id)
    assert submitted["request_id"] == response["X-Request-ID"]
    assert "user" not in submitted


def test_a_log_line_in_a_request_names_the_signed_in_user(log_lines, rf, alice):
    request = rf.get("/inbox/")
    request.user = alice
    with audit_context(request_id="req-7"):
        serve(request)
    line = log_lines.named("in the view")
    assert (line["user"], line["request_id"]) == ("alice", "req-7")
    assert "client" not in line


def test_logging_never_loads_a_user_the_request_has_not_loaded(log_lines, rf):
    request = rf.get("/")
    request.user = SimpleLazyObject(lambda: pytest.fail("the log line loaded the user"))
    serve(request)
    assert "user" not in log_lines.named("in the view")


def test_outside_a_request_the_audit_actor_names_the_user_or_client(log_lines):
    with audit_context(actor=Actor.api_client(7, "crm"), correlation_id="corr-1"):
        logger.info("from a task")
    line = log_lines.named("from a task")
    assert (line["client"], line["correlation_id"]) == ("crm", "corr-1")
    with audit_context(actor=Actor.system("beat")):
        logger.info("from beat")
    assert {"user", "client"}.isdisjoint(log_lines.named("from beat"))


def test_a_log_line_inside_a_span_carries_its_trace_and_span_ids(log_lines):
    logger.info("untraced")
    provider = TracerProvider()
    tracing.instrument(provider)
    try:
        with tracing.span("work"):
            trace_id, span_id = tracing.current_ids()
            logger.info("traced")
    finally:
        tracing.uninstrument()
        provider.shutdown()
    line = log_lines.named("traced")
    assert (line["trace_id"], line["span_id"]) == (trace_id, span_id)
    assert {"trace_id", "span_id"}.isdisjoint(log_lines.named("untraced"))


def test_extra_fields_that_look_secret_are_redacted(log_lines):
    logger.warning(
        "odd input",
        extra={
            "case_id": "c-1",
            "payload": {"iban": SECRET_VALUE},
            "api_key": "k-123",
            "Authorization": "Token abc",
            "password": "hunter2",
        },
    )
    line = log_lines.named("odd input")
    assert line["case_id"] == "c-1"
    assert line["payload"] == line["api_key"] == line["Authorization"] == REDACTED
    assert line["password"] == REDACTED
    assert SECRET_VALUE not in "\n".join(log_lines.text)
