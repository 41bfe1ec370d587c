"""Workflow definitions: JSON validated against a schema, then checked for sense.

A definition lists steps; each step names where each of its outcomes leads: another
step's id, or "end:approved" / "end:rejected". Kinds:

- task: runs an allow-listed handler, with retry policy, timeout and an optional
  compensation handler; its outcomes are the ones the handler declares.
- review: a human gate; outcomes "approve" and "reject"; routing hints and an SLA.
- wait: waits for a named signal (outcome "signal") and/or a timer (outcome "timeout").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from orchestration.workers import registered

END_STATES = ("approved", "rejected")
END_PREFIX = "end:"
REVIEW_OUTCOMES = ("approve", "reject")

_ID = {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,47}$"}
_TARGET = {"type": "string", "minLength": 1, "maxLength": 64}
_NEXT = {
    "type": "object",
    "minProperties": 1,
    "propertyNames": {"pattern": "^[a-z][a-z0-9_]{0,31}$"},
    "additionalProperties": _TARGET,
}
_RETRY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 50},
        "base_delay": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
        "max_delay": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400},
    },
}
_ROUTING = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "queue": {"type": "string", "maxLength": 64},
        "skills": {"type": "array", "items": {"type": "string", "maxLength": 64}},
        "region": {"type": "string", "maxLength": 32},
    },
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["slug", "title", "start", "steps"],
    "properties": {
        "slug": {"type": "string", "pattern": "^[a-z][a-z0-9-]{1,63}$"},
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string", "maxLength": 4000},
        "start": _ID,
        "steps": {
            "type": "array",
            "minItems": 1,
            "maxItems": 100,
            "items": {
                "type": "object",
                "required": ["id", "kind", "next"],
                "properties": {
                    "id": _ID,
                    "kind": {"enum": ["task", "review", "wait"]},
                    "title": {"type": "string", "maxLength": 200},
                    "next": _NEXT,
                    "handler": {"type": "string"},
                    "compensate": {"type": "string"},
                    "retry": _RETRY,
                    "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400},
                    "routing": _ROUTING,
                    "sla": {"type": "number", "exclusiveMinimum": 0},
                    "signal": {"type": "string", "pattern": "^[a-z][a-z0-9_.-]{0,63}$"},
                    "wait_seconds": {"type": "number", "exclusiveMinimum": 0},
                },
                "allOf": [
                    {
                        "if": {"properties": {"kind": {"const": "task"}}},
                        "then": {
                            "required": ["handler"],
                            "not": {
                                "anyOf": [
                                    {"required": [k]}
                                    for k in ("signal", "wait_seconds", "routing", "sla")
                                ]
                            },
                        },
                    },
                    {
                        "if": {"properties": {"kind": {"const": "review"}}},
                        "then": {
                            "not": {
                                "anyOf": [
                                    {"required": [k]}
                                    for k in (
                                        "handler",
                                        "compensate",
                                        "retry",
                                        "timeout",
                                        "signal",
                                        "wait_seconds",
                                    )
                                ]
                            },
                        },
                    },
                    {
                        "if": {"properties": {"kind": {"const": "wait"}}},
                        "then": {
                            "anyOf": [{"required": ["signal"]}, {"required": ["wait_seconds"]}],
                            "not": {
                                "anyOf": [
                                    {"required": [k]}
                                    for k in (
                                        "handler",
                                        "compensate",
                                        "retry",
                                        "timeout",
                                        "routing",
                                    )
                                ]
                            },
                        },
                    },
                ],
            },
        },
    },
}


class InvalidDefinition(ValueError):
    """The definition is refused; `problems` lists each one with the part at fault."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0


@dataclass(frozen=True)
class Step:
    id: str
    kind: str
    next: Mapping[str, str]
    title: str = ""
    handler: str = ""
    compensate: str = ""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    routing: Mapping[str, Any] = field(default_factory=dict)
    sla: float | None = None
    signal: str = ""
    wait_seconds: float | None = None

    def outcomes(self) -> tuple[str, ...]:
        """The outcomes this step can produce; each needs a transition."""
        if self.kind == "task":
            spec = registered().get(self.handler)
            return spec.outcomes if spec else ()
        if self.kind == "review":
            return REVIEW_OUTCOMES
        return tuple(
            o for o, on in (("signal", bool(self.signal)), ("timeout", self.wait_seconds)) if on
        )


@dataclass(frozen=True)
class Definition:
    slug: str
    title: str
    start: str
    steps: Mapping[str, Step]
    description: str = ""

    def step(self, step_id: str) -> Step:
        return self.steps[step_id]

    def target(self, step_id: str, outcome: str) -> str:
        """Where `outcome` of `step_id` leads: a step id or "end:<state>"."""
        try:
            return self.steps[step_id].next[outcome]
        except KeyError:
            raise InvalidDefinition(
                [f"step {step_id!r} has no transition for outcome {outcome!r}"]
            ) from None


def _path(error: jsonschema.ValidationError) -> str:
    parts = []
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "definition" + "".join(parts)


def parse(document: Any) -> Definition:
    """Validate a definition document and return it parsed, or raise InvalidDefinition."""
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        raise InvalidDefinition([f"{_path(e)}: {e.message}" for e in errors])

    problems: list[str] = []
    steps: dict[str, Step] = {}
    handlers = registered()
    for index, raw in enumerate(document["steps"]):
        where = f"definition.steps[{index}] ({raw['id']!r})"
        if raw["id"] in steps:
            problems.append(f"{where}: duplicate step id")
            continue
        for key in ("handler", "compensate"):
            name = raw.get(key)
            if name and name not in handlers:
                problems.append(f"{where}.{key}: unknown handler {name!r} (not registered)")
        steps[raw["id"]] = Step(
            id=raw["id"],
            kind=raw["kind"],
            next=dict(raw["next"]),
            title=raw.get("title", ""),
            handler=raw.get("handler", ""),
            compensate=raw.get("compensate", ""),
            retry=RetryPolicy(**raw.get("retry", {})),
            timeout=raw.get("timeout"),
            routing=dict(raw.get("routing", {})),
            sla=raw.get("sla"),
            signal=raw.get("signal", ""),
            wait_seconds=raw.get("wait_seconds"),
        )
    if document["start"] not in steps:
        problems.append(f"definition.start: unknown step {document['start']!r}")

    for step in steps.values():
        where = f"step {step.id!r}"
        if step.retry.max_delay < step.retry.base_delay:
            problems.append(f"{where}.retry: max_delay is below base_delay")
        for outcome, target in step.next.items():
            if target.startswith(END_PREFIX):
                if target[len(END_PREFIX) :] not in END_STATES:
                    problems.append(
                        f"{where}.next.{outcome}: unknown end {target!r}; "
                        f"use one of {', '.join(END_PREFIX + s for s in END_STATES)}"
                    )
            elif target not in steps:
                problems.append(f"{where}.next.{outcome}: unknown step {target!r}")
        if step.kind == "task" and step.handler not in handlers:
            continue  # already reported; its outcomes are unknown
        produced = step.outcomes()
        for outcome in produced:
            if outcome not in step.next:
                problems.append(f"{where}: outcome {outcome!r} has no transition")
        for outcome in step.next:
            if outcome not in produced:
                problems.append(
                    f"{where}.next.{outcome}: the step never produces outcome {outcome!r} "
                    f"(it produces {', '.join(produced) or 'nothing'})"
                )

    if not problems:
        problems.extend(_graph_problems(document["start"], steps))
    if problems:
        raise InvalidDefinition(problems)
    return Definition(
        slug=document["slug"],
        title=document["title"],
        start=document["start"],
        steps=steps,
        description=document.get("description", ""),
    )


def _graph_problems(start: str, steps: Mapping[str, Step]) -> list[str]:
    problems = []
    successors = {
        s.id: [t for t in s.next.values() if not t.startswith(END_PREFIX)] for s in steps.values()
    }
    seen = {start}
    stack = [start]
    while stack:
        for nxt in successors[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    for step_id in steps:
        if step_id not in seen:
            problems.append(f"step {step_id!r} is unreachable from the start step {start!r}")
    # A loop made only of task steps would spin for ever: every loop must pass a
    # review or a wait, where time or a person breaks it.
    automatic = {s.id for s in steps.values() if s.kind == "task"}
    colour: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        colour[node] = 1
        for nxt in successors[node]:
            if nxt not in automatic:
                continue
            if colour.get(nxt) == 1:
                loop = [*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt]
                problems.append(f"steps {' -> '.join(loop)} form a loop with no wait or review")
            elif colour.get(nxt) is None:
                visit(nxt, [*trail, nxt])
        colour[node] = 2

    for node in sorted(automatic):
        if colour.get(node) is None:
            visit(node, [node])
    return problems
