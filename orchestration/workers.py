"""The worker registry: the allow-list of handlers a workflow may name.

A handler is a plain function registered under a dotted name:

    @worker("invoice.extract", outcomes=("ok",), credentials=("ERP_API_TOKEN",))
    def extract(ctx: StepContext) -> dict: ...

It receives a read-only StepContext and returns its output (a JSON-ready dict; the
key "outcome", when present, picks the transition). Handlers must be idempotent:
they may run more than once for one step run (at-least-once delivery), and should
use `ctx.idempotency_key` to dedupe side effects in the systems they call.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

Output = dict[str, Any]


class WorkerError(Exception):
    """Base of the errors a handler may raise."""


class PermanentError(WorkerError):
    """The step can never succeed with this input: no retry; the case compensates."""


class UndeclaredCredential(WorkerError):
    """A handler asked for a secret it did not declare."""


class UnknownHandler(LookupError):
    pass


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


class Credentials:
    """The secrets one handler declared, read from the environment when asked for."""

    def __init__(self, handler: str, declared: tuple[str, ...]) -> None:
        self._handler = handler
        self._declared = frozenset(declared)

    def __getitem__(self, name: str) -> str:
        if name not in self._declared:
            raise UndeclaredCredential(
                f"handler {self._handler!r} asked for credential {name!r}, which it did not "
                f"declare; declared: {sorted(self._declared) or 'none'}"
            )
        value = os.environ.get(name)
        if value is None:
            raise WorkerError(f"credential {name!r} of handler {self._handler!r} is not set")
        return value

    def get(self, name: str, default: str | None = None) -> str | None:
        try:
            return self[name]
        except UndeclaredCredential:
            raise
        except WorkerError:
            return default


@dataclass(frozen=True)
class StepContext:
    """What a handler may see. Mappings are read-only views."""

    case_id: str
    step_id: str
    handler: str
    payload: Mapping[str, Any]
    outputs: Mapping[str, Any]  # earlier steps' outputs by step id
    correlation_id: str
    attempt: int
    idempotency_key: str
    credentials: Credentials
    # The case's proposed values as they stand now, reviewers' edits included.
    proposed: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # For compensation handlers: the output of the step being undone.
    compensating: Mapping[str, Any] | None = None

    @classmethod
    def build(
        cls,
        *,
        case_id: str,
        step_id: str,
        handler: str,
        payload: Mapping[str, Any],
        outputs: Mapping[str, Any],
        correlation_id: str,
        attempt: int,
        idempotency_key: str,
        proposed: Mapping[str, Any] | None = None,
        compensating: Mapping[str, Any] | None = None,
    ) -> StepContext:
        spec = get_handler(handler)
        return cls(
            case_id=case_id,
            step_id=step_id,
            handler=handler,
            payload=_freeze(payload),
            outputs=_freeze(outputs),
            correlation_id=correlation_id,
            attempt=attempt,
            idempotency_key=idempotency_key,
            credentials=Credentials(handler, spec.credentials),
            proposed=_freeze(proposed or {}),
            compensating=_freeze(compensating) if compensating is not None else None,
        )


Handler = Callable[[StepContext], Output]


@dataclass(frozen=True)
class HandlerSpec:
    name: str
    func: Handler
    outcomes: tuple[str, ...]
    credentials: tuple[str, ...]
    description: str


_registry: dict[str, HandlerSpec] = {}


def worker(
    name: str,
    *,
    outcomes: tuple[str, ...] = ("ok",),
    credentials: tuple[str, ...] = (),
) -> Callable[[Handler], Handler]:
    """Register a handler under `name`. Registering one name twice is a programming error."""

    def register(func: Handler) -> Handler:
        existing = _registry.get(name)
        if existing is not None and existing.func is not func:
            raise ValueError(f"worker {name!r} is already registered by {existing.func!r}")
        _registry[name] = HandlerSpec(
            name=name,
            func=func,
            outcomes=tuple(outcomes),
            credentials=tuple(credentials),
            description=(func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else "",
        )
        return func

    return register


def get_handler(name: str) -> HandlerSpec:
    try:
        return _registry[name]
    except KeyError:
        raise UnknownHandler(f"no worker is registered as {name!r}") from None


def registered() -> Mapping[str, HandlerSpec]:
    return MappingProxyType(_registry)
