"""Tracing (config/tracing.py): off and free by default; when on, one trace runs from the
API request through the Celery task and the worker handler to the webhook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from celery.worker.request import Request
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.instrumentation.urllib import URLLibInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from audit.context import audit_context, current
from audit.models import AuditEvent
from config import tracing
from config.celery import app as celery_app
from orchestration import intake, services
from orchestration.models import Case
from orchestration.tasks import execute_step
from tests.orchestration.conftest import three_tasks

ROOT = Path(__file__).resolve().parents[2]
INSTRUMENTORS = (DjangoInstrumentor, CeleryInstrumentor, PsycopgInstrumentor, URLLibInstrumentor)
SUBMISSION = {
    "workflow": "three-tasks",
    "external_ref": "INV-2026-0042",
    "payload": {"vendor": "ACME GmbH", "amount": "1200.00", "currency": "EUR"},
}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for one test, into memory; instrumentation is undone afterwards."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.instrument(provider)
    try:
        yield exporter
    finally:
        tracing.uninstrument()
        provider.shutdown()


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A local HTTP server answering 204; yields its URL and the headers it received."""
    received: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names = []
    while span.parent is not None:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


def without_otel_settings() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return env | {"DJANGO_SETTINGS_MODULE": "config.settings_test"}


def run_python(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


# Off by default ------------------------------------------------------------------------


def test_without_otel_settings_setup_installs_nothing(monkeypatch):
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    assert tracing.setup() is False
    assert not tracing.enabled()
    assert not any(i().is_instrumented_by_opentelemetry for i in INSTRUMENTORS)
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert tracing.current_ids() == ("", "")
    with tracing.span("handler test.collect", {"arbiter.case_id": "1"}) as span:
        assert span is None  # a nullcontext: no tracer was asked for anything


def test_the_web_app_and_a_worker_without_otel_settings_never_import_opentelemetry():
    code = (
        "import sys, config.wsgi; from celery import signals; "
        "signals.worker_process_init.send(sender=None); "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    assert run_python(code, without_otel_settings()) == "[]"


def test_otel_settings_turn_tracing_on_in_the_web_process():
    code = (
        "import json, config.wsgi; from django.conf import settings; "
        "from opentelemetry import trace; "
        "from opentelemetry.instrumentation.django import DjangoInstrumentor; "
        "provider = trace.get_tracer_provider(); "
        "print(json.dumps([DjangoInstrumentor().is_instrumented_by_opentelemetry, "
        "type(provider).__module__, provider.resource.attributes['service.name'], "
        "settings.MIDDLEWARE[0]]))"
    )
    env = without_otel_settings() | {"OTEL_TRACES_EXPORTER": "console"}
    instrumented, provider, service, first = json.loads(run_python(code, env))
    assert instrumented is True
    assert provider == "opentelemetry.sdk.trace"
    assert service == "arbiter"
    assert "opentelemetry" in first


def test_a_worker_process_starts_tracing_when_it_initialises():
    code = (
        "import json, config.celery; from celery import signals; "
        "from opentelemetry.instrumentation.celery import CeleryInstrumentor as C; "
        "before = C().is_instrumented_by_opentelemetry; "
        "signals.worker_process_init.send(sender=None); "
        "print(json.dumps([before, C().is_instrumented_by_opentelemetry]))"
    )
    env = without_otel_settings() | {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "OTEL_SERVICE_NAME": "arbiter-worker",
    }
    assert json.loads(run_python(code, env)) == [False, True]


@pytest.mark.parametrize(
    ("environ", "exporters"),
    [
        ({}, []),
        ({"OTEL_SERVICE_NAME": "arbiter"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, []),
    ],
)
def test_the_otel_variables_choose_the_exporters(environ, exporters):
    assert tracing.exporters_from_env(environ) == exporters


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "zipkin"},
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
    ],
)
def test_an_exporter_this_installation_lacks_stops_start_up(environ):
    with pytest.raises(ImproperlyConfigured):
        tracing.exporters_from_env(environ)


# On: one trace from the API call to the webhook ----------------------------------------


@pytest.mark.django_db(transaction=True)
def test_one_trace_runs_from_the_api_call_through_the_task_and_handlers_to_the_webhook(
    spans, webhook_receiver, adam
):
    url, received = webhook_receiver
    services.workflow_load(document=three_tasks(), actor=adam)
    client, token = intake.api_client_create(
        name="erp", scopes=["cases:write", "cases:read"], actor=adam
    )
    intake.webhook_endpoint_create(
        client=client, url=url, event_types=["case.submitted"], actor=adam
    )

    # The set-up's own queries may be traced (as traces of their own) when this test
    # opens a fresh, instrumented connection; only what the request starts counts.
    spans.clear()
    response = Client(HTTP_AUTHORIZATION=f"Token {token}").post(
        "/api/v1/cases/", json.dumps(SUBMISSION), content_type="application/json"
    )

    # What the request did, before this test's own queries below add spans of their own.
    finished = spans.get_finished_spans()
    # Committed inside the request, so eager Celery ran the whole case there.
    assert response.status_code == 201
    case = Case.objects.get(pk=response.json()["id"])
    assert case.status == "approved"
    (api_call,) = [s for s in finished if s.kind == SpanKind.SERVER]
    assert api_call.name == "POST api/v1/cases/"
    trace_id = hex_trace(api_call)
    assert {hex_trace(s) for s in finished} == {trace_id}

    by_id = {s.context.span_id: s for s in finished if s.context is not None}
    tasks = [s for s in finished if s.name == "run/orchestration.execute_step"]
    assert len(tasks) == 3
    handlers = {s.name: s for s in finished if s.name.startswith("handler ")}
    assert set(handlers) == {"handler test.collect", "handler test.reserve", "handler test.flaky"}
    collect = handlers["handler test.collect"]
    assert dict(collect.attributes or {}) == {
        "arbiter.case_id": str(case.pk),
        "arbiter.correlation_id": str(case.correlation_id),
        "arbiter.step_id": "collect",
        "arbiter.handler": "test.collect",
        "arbiter.attempt": 1,
    }
    assert ancestors(collect, by_id) == ["run/orchestration.execute_step", api_call.name]

    # The webhook POST is a span of the trace, and the receiver is told so.
    # (database spans are CLIENT spans too when the connection is instrumented)
    (webhook_call,) = [
        s for s in finished if s.kind == SpanKind.CLIENT and "db.system" not in (s.attributes or {})
    ]
    assert webhook_call.name == "POST"
    assert "run/orchestration.deliver_webhook" in ancestors(webhook_call, by_id)
    assert len(received) == 1
    assert received[0]["traceparent"].split("-")[1] == trace_id

    events = AuditEvent.objects.filter(case_id=str(case.pk))
    assert events.count() >= 7  # submitted, running, three steps started and finished...
    assert set(events.values_list("trace_id", flat=True)) == {trace_id}


@pytest.mark.django_db
def test_a_task_message_carries_the_trace_to_the_worker(spans):
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        with celery_app.connection_for_write("memory://") as connection:
            with tracing.span("enqueue"), connection.Producer() as producer:
                execute_step.apply_async(args=(0,), producer=producer, queue="tracing-test")
            message = connection.SimpleQueue("tracing-test").get(timeout=2)
            # What a worker does with it (step run 0 does not exist: nothing to run).
            Request(message, app=celery_app, task=execute_step).execute()
    finally:
        celery_app.conf.task_always_eager = eager

    finished = {s.name: s for s in spans.get_finished_spans()}
    publish = finished["apply_async/orchestration.execute_step"]
    run = finished["run/orchestration.execute_step"]
    assert message.headers["traceparent"].split("-")[1] == hex_trace(finished["enqueue"])
    assert run.parent is not None and publish.context is not None
    assert run.parent.span_id == publish.context.span_id
    assert hex_trace(run) == hex_trace(publish) == hex_trace(finished["enqueue"])


def test_audit_events_take_the_trace_id_of_the_active_span_else_the_traceparent(spans):
    with audit_context(trace_id="a" * 32):
        assert current().trace_id == "a" * 32
        with tracing.span("work"):
            trace_id, span_id = tracing.current_ids()
            assert current().trace_id == trace_id != "a" * 32
            assert len(span_id) == 16
        assert current().trace_id == "a" * 32
