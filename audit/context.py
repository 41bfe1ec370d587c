"""Who is acting and in which request or task: the context every audit event inherits.

Web requests get it from AuditContextMiddleware; Celery tasks and commands set it with
`audit_context(...)`. Values live in a ContextVar, so threads and tasks don't mix.
While tracing is on (config/tracing.py), the trace id is the active span's.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest, HttpResponse

from audit.models import ActorKind
from config import tracing


@dataclass(frozen=True)
class Actor:
    """Who did it: a signed-in user, an API client, or the system (a worker, beat, a command)."""

    kind: str
    id: str
    name: str

    @classmethod
    def user(cls, user: AbstractBaseUser) -> Actor:
        return cls(ActorKind.USER, str(user.pk), user.get_username())

    @classmethod
    def api_client(cls, client_id: object, name: str) -> Actor:
        return cls(ActorKind.API_CLIENT, str(client_id), name)

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(ActorKind.SYSTEM, "", name)


ActorLike = Actor | AbstractBaseUser | AnonymousUser | None


@dataclass(frozen=True)
class AuditContext:
    request_id: str = ""
    trace_id: str = ""
    client_ip: str = ""
    correlation_id: str = ""
    # Who acts when a service is not told explicitly (signal handlers, admin saves).
    actor: Actor | None = None


_EMPTY = AuditContext()
_current: ContextVar[AuditContext] = ContextVar("arbiter_audit_context", default=_EMPTY)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# W3C trace context: version-traceid-parentid-flags
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def current() -> AuditContext:
    """The context of the code running now. Its trace_id is the active span's when a
    span is active, else whatever was set (a request's traceparent header)."""
    ctx = _current.get()
    trace_id = tracing.current_trace_id()
    if trace_id and trace_id != ctx.trace_id:
        return replace(ctx, trace_id=trace_id)
    return ctx


@contextlib.contextmanager
def audit_context(**values: Any) -> Iterator[AuditContext]:
    """Set request_id, trace_id, client_ip, correlation_id or actor for the code inside."""
    token = _current.set(replace(_current.get(), **values))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def normalise_ip(raw: str) -> str:
    """The canonical text of an IP address, or "" when `raw` is not one."""
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        return ""


def client_ip_of(request: HttpRequest) -> str:
    # Only trust X-Forwarded-For when a proxy we run is known to set it; otherwise a
    # client could write any address it likes into the audit trail.
    hops = getattr(settings, "TRUSTED_PROXY_HOPS", 0)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if hops and forwarded:
        addresses = [a.strip() for a in forwarded.split(",") if a.strip()]
        if len(addresses) >= hops:
            return normalise_ip(addresses[-hops])
    return normalise_ip(request.META.get("REMOTE_ADDR", ""))


def trace_id_of(request: HttpRequest) -> str:
    match = _TRACEPARENT.match(request.headers.get("traceparent", "").strip().lower())
    return match.group(1) if match else ""


class AuditContextMiddleware:
    """Gives each request an id (kept from X-Request-ID when well-formed) and records
    the client address and trace id for the audit events the request writes."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        user = getattr(request, "user", None)
        with audit_context(
            request_id=request_id,
            trace_id=trace_id_of(request),
            client_ip=client_ip_of(request),
            actor=(
                Actor.user(user)
                if user is not None and user.is_authenticated
                else Actor.system("anonymous")
            ),
        ):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response
