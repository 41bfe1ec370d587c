"""OpenTelemetry tracing for the web process, Celery workers and beat.

Off unless the standard OTEL_* variables ask for it: with no OTEL_TRACES_EXPORTER and
no OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, `setup()` returns at once. Then no SDK
provider exists, nothing is instrumented, the OpenTelemetry packages are never
imported, and `span()` and `current_trace_id()` cost one global lookup.

When on, Django requests, Celery tasks (producer and worker: the context travels in
the message headers), psycopg queries and urllib calls (webhooks) are traced, and the
engine wraps each handler call in a span carrying the case's correlation id. The
exporter, its endpoint, headers, sampler and batching all come from the SDK's own
OTEL_* variables; only the choice of exporter is read here, to fail loudly on a typo.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer
    from opentelemetry.util.types import AttributeValue

# The exporters this installation carries (opentelemetry-exporter-otlp-proto-http).
EXPORTERS = ("otlp", "console")
# Probes and scrapes would drown the traces that matter; OTEL_PYTHON_DJANGO_EXCLUDED_URLS
# (or OTEL_PYTHON_EXCLUDED_URLS) replaces this list.
DEFAULT_EXCLUDED_URLS = "healthz,readyz,metrics"

# The tracer of this process; None while tracing is off.
_tracer: Tracer | None = None


def exporters_from_env(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The span exporters the OTEL_* variables ask for; an empty list means tracing is off.

    OTEL_TRACES_EXPORTER names them (comma-separated; `none` for none). Without it, an
    OTLP endpoint alone turns on the OTLP exporter. OTEL_SDK_DISABLED=true wins over both.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not raw:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT", ""
        )
        return ["otlp"] if endpoint.strip() else []
    names = [name for name in (n.strip() for n in raw.split(",")) if name and name != "none"]
    unknown = sorted(set(names) - set(EXPORTERS))
    if unknown:
        raise ImproperlyConfigured(
            f"OTEL_TRACES_EXPORTER={raw!r}: {', '.join(unknown)} is not available; "
            f"use {', '.join(EXPORTERS)} or none."
        )
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
        or "http/protobuf"
    ).strip()
    if "otlp" in names and protocol != "http/protobuf":
        raise ImproperlyConfigured(
            f"OTLP protocol {protocol!r}: Arbiter ships the http/protobuf exporter only "
            "(OTLP/HTTP, port 4318)."
        )
    return list(dict.fromkeys(names))


def enabled() -> bool:
    """Whether this process traces (setup() found OTEL_* settings, or a test instrumented it)."""
    return _tracer is not None


def setup() -> bool:
    """Start tracing in this process when the OTEL_* variables ask for it; True when on.

    Call it once per process before Django builds its middleware chain (config/wsgi.py)
    and in each Celery worker process (config/celery.py). A second call does nothing.
    """
    if _tracer is not None:
        return True
    names = exporters_from_env()
    if not names:
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "arbiter"}))
    provider = TracerProvider(resource=resource)  # OTEL_TRACES_SAMPLER and friends
    for name in names:
        exporter = _exporter(name)
        # The console is for a developer watching: print each span as it ends.
        processor = SimpleSpanProcessor if name == "console" else BatchSpanProcessor
        provider.add_span_processor(processor(exporter))
    trace.set_tracer_provider(provider)
    instrument(provider)
    return True


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_*


def instrument(provider: TracerProvider) -> None:
    """Trace Django requests, Celery tasks, psycopg queries and urllib calls into `provider`.

    setup() calls it; a test calls it with an in-memory exporter and undoes it with
    uninstrument(). Django's part adds a middleware, so it must run before the WSGI
    handler (or the test client) loads the middleware chain.
    """
    global _tracer
    from opentelemetry.instrumentation.celery import (
        CeleryInstrumentor,
    )
    from opentelemetry.instrumentation.django import (
        DjangoInstrumentor,
    )
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.urllib import URLLibInstrumentor

    excluded = os.environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS") or os.environ.get(
        "OTEL_PYTHON_EXCLUDED_URLS", DEFAULT_EXCLUDED_URLS
    )
    DjangoInstrumentor().instrument(tracer_provider=provider, excluded_urls=excluded)
    CeleryInstrumentor().instrument(tracer_provider=provider)
    PsycopgInstrumentor().instrument(tracer_provider=provider)
    URLLibInstrumentor().instrument(tracer_provider=provider)
    _tracer = provider.get_tracer("arbiter")


def uninstrument() -> None:
    """Undo instrument(): no instrumentation left, and span() is a no-op again."""
    global _tracer
    if _tracer is None:
        return
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.urllib import URLLibInstrumentor

    for instrumentor in (
        DjangoInstrumentor(),
        CeleryInstrumentor(),
        PsycopgInstrumentor(),
        URLLibInstrumentor(),
    ):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    _tracer = None


def span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None
) -> AbstractContextManager[object]:
    """A span around the code inside (the current span's child); nothing when tracing is off."""
    if _tracer is None:
        return contextlib.nullcontext()
    return _tracer.start_as_current_span(name, attributes=attributes)


def current_ids() -> tuple[str, str]:
    """The active span's (trace id, span id) in W3C hex, or ("", "") when none is active."""
    if _tracer is None:
        return "", ""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "", ""
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def current_trace_id() -> str:
    """The active span's trace id (32 hex digits), or "" when none is active."""
    return current_ids()[0]
