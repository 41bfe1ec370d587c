"""The orchestrator: every state change of workflows, cases and step runs.

Recipe for each change: lock the case row (then its step run), check the transition
against the tables in models.py, save, write the audit event and the outbox event
in the same transaction, and enqueue follow-up work with transaction.on_commit.
Handlers run outside any transaction, between two short ones.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import math
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case as SqlCase
from django.db.models import Value, When
from django.utils import timezone

from audit.context import Actor, ActorLike, audit_context
from audit.models import AuditAction
from audit.services import batch as audit_batch
from audit.services import chain_started, record
from config import tracing
from config.errors import ApplicationError, Conflict, NotFound
from config.sqlcache import first_row
from orchestration import definition as wf_definition
from orchestration.backoff import retry_delay
from orchestration.definition import END_PREFIX, Definition, Step
from orchestration.models import (
    FINISHED_CASE_STATES,
    ApiClient,
    BreakerState,
    Case,
    CaseStatus,
    CircuitBreaker,
    DeadLetter,
    OutboxEvent,
    StepRun,
    StepStatus,
    ThresholdPolicy,
    Timer,
    TimerKind,
    Workflow,
)
from orchestration.thresholds import DEFAULT_GRID, IMPACTS, Grid, build_grid, is_sampled
from orchestration.workers import PermanentError, StepContext, get_handler

logger = logging.getLogger("arbiter.engine")

# A running attempt whose step sets no timeout is presumed lost (worker crash) after this.
DEFAULT_STEP_TIMEOUT = 300.0
# Every enqueued step run also gets a durable timer this long after it is due, so a
# message lost on the way (broker down at commit time) is sent again by the sweep.
KICK_GRACE_SECONDS = 30.0


def _user_or_none(actor: ActorLike) -> Any:
    return (
        actor
        if getattr(actor, "is_authenticated", False) and not isinstance(actor, Actor)
        else None
    )


class UnknownWorkflow(NotFound):
    pass


class NoSuchSignal(Conflict):
    pass


class CaseFinished(Conflict):
    pass


# Workflows ------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _parsed(document: str) -> Definition:
    return wf_definition.parse(json.loads(document))


def definition_of(workflow: Workflow) -> Definition:
    """The parsed definition, cached by content (validation is not free, and cases of
    one version share it)."""
    return _parsed(json.dumps(workflow.definition, sort_keys=True))


@transaction.atomic
def workflow_load(
    *, document: Mapping[str, Any], actor: ActorLike, publish: bool = True
) -> tuple[Workflow, bool]:
    """Store a definition as the next version of its workflow; returns (version, created).

    Refuses an invalid definition (InvalidDefinition naming each problem) and saves
    nothing then. A definition identical to the newest version creates nothing.
    """
    parsed = wf_definition.parse(document)
    newest = (
        Workflow.objects.select_for_update().filter(slug=parsed.slug).order_by("-version").first()
    )
    if newest is not None and newest.definition == document:
        if publish and not newest.published:
            newest = workflow_publish(workflow=newest, actor=actor)
        return newest, False
    version = (newest.version + 1) if newest is not None else 1
    workflow = Workflow.objects.create(
        slug=parsed.slug,
        version=version,
        title=parsed.title,
        definition=dict(document),
        created_by=_user_or_none(actor),
    )
    if publish:
        workflow = workflow_publish(workflow=workflow, actor=actor)
    return workflow, True


@transaction.atomic
def workflow_publish(*, workflow: Workflow, actor: ActorLike) -> Workflow:
    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
    if workflow.published:
        raise Conflict(f"{workflow} is already published and cannot change")
    wf_definition.parse(workflow.definition)  # a draft edited in the admin may be invalid
    workflow.published = True
    workflow.published_at = timezone.now()
    workflow._change_reason = "published"  # type: ignore[attr-defined]
    workflow.save(update_fields=["published", "published_at"])
    record(
        actor=actor,
        action=AuditAction.WORKFLOW_PUBLISHED,
        subject=workflow,
        after={"slug": workflow.slug, "version": workflow.version},
    )
    return workflow


def newest_published(slug: str) -> Workflow | None:
    """The newest published version of the workflow `slug`, or None (read on every
    submission: its SQL is built once per slug)."""
    return first_row(
        Workflow,
        ("published workflow", slug),
        lambda: Workflow.objects.filter(slug=slug, published=True).order_by("-version"),
    )


def latest_published(slug: str) -> Workflow:
    workflow = newest_published(slug)
    if workflow is None:
        raise UnknownWorkflow(f"no published workflow {slug!r}", field="workflow")
    return workflow


# Threshold policies -------------------------------------------------------------------


def policy_for(workflow_slug: str, step_id: str) -> ThresholdPolicy | None:
    """The newest grid for this review step, else for its workflow, else None (the
    built-in default applies)."""
    # One read: the step's own grids sort before the workflow's (step_id ""). It runs
    # at every review gate; its SQL is built once per (workflow, step).
    return first_row(
        ThresholdPolicy,
        ("threshold policy", workflow_slug, step_id),
        lambda: ThresholdPolicy.objects.filter(
            workflow_slug=workflow_slug, step_id__in=[step_id, ""]
        ).order_by(
            SqlCase(When(step_id=step_id, then=Value(0)), default=Value(1)),
            "-version",
        ),
    )


def policy_grid(policy: ThresholdPolicy | None) -> Grid:
    if policy is None:
        return DEFAULT_GRID
    return build_grid(
        edges=policy.edges,
        cells=policy.cells,
        sample_rates=policy.sample_rates,
        allow_critical_auto=policy.critical_auto_override,
        override_reason=policy.override_reason,
    )


@transaction.atomic
def threshold_policy_save(
    *,
    workflow_slug: str,
    step_id: str = "",
    edges: list[Any],
    cells: Mapping[str, list[Any]],
    sample_rates: Mapping[str, list[Any]],
    reason: str,
    actor: ActorLike,
    critical_auto_override: bool = False,
    override_reason: str = "",
) -> ThresholdPolicy:
    """Save a grid as the next version of its policy. Refuses (InvalidGrid, naming each
    problem; ApplicationError for a missing reason) and saves nothing when invalid."""
    if not reason.strip():
        raise ApplicationError("say why the grid changes", field="reason")
    grid = build_grid(
        edges=edges,
        cells=cells,
        sample_rates=sample_rates,
        allow_critical_auto=critical_auto_override,
        override_reason=override_reason,
    )
    if not Workflow.objects.filter(slug=workflow_slug).exists():
        raise ApplicationError(f"no workflow {workflow_slug!r}", field="workflow_slug")
    latest = (
        ThresholdPolicy.objects.select_for_update()
        .filter(workflow_slug=workflow_slug, step_id=step_id)
        .order_by("-version")
        .first()
    )
    policy = ThresholdPolicy(
        workflow_slug=workflow_slug,
        step_id=step_id,
        version=(latest.version + 1) if latest else 1,
        **grid.as_dict(),
        critical_auto_override=critical_auto_override,
        override_reason=override_reason if critical_auto_override else "",
        reason=reason,
        created_by=_user_or_none(actor),
    )
    policy._change_reason = reason  # type: ignore[attr-defined]
    policy.save()
    record(
        actor=actor,
        action=AuditAction.POLICY_CHANGED,
        subject=policy,
        before=policy_grid(latest).as_dict() if latest else None,
        after={**grid.as_dict(), "version": policy.version, "step": step_id or None},
        reason=reason,
    )
    return policy


# Outbox ----------------------------------------------------------------------------


def outbox_publish(*, topic: str, case: Case | None, payload: Mapping[str, Any]) -> OutboxEvent:
    """Write an event in the caller's transaction; the relay sends it after commit."""
    return outbox_publish_many([(topic, case, payload)])[0]


def outbox_publish_many(
    events: Sequence[tuple[str, Case | None, Mapping[str, Any]]],
) -> list[OutboxEvent]:
    """Write (topic, case, payload) events in the caller's transaction with one INSERT;
    the relay sends them after commit."""
    rows = [
        OutboxEvent(
            topic=topic,
            case=case,
            correlation_id=str(case.correlation_id) if case is not None else "",
            payload={
                **payload,
                **({"case_id": str(case.pk), "status": case.status} if case is not None else {}),
            },
        )
        for topic, case, payload in events
    ]
    if not rows:
        return []
    OutboxEvent.objects.bulk_create(rows)
    # One nudge per transaction is enough, however many events it writes.
    if not any(entry[1] is _nudge_relay for entry in connection.run_on_commit):
        transaction.on_commit(_nudge_relay)
    return rows


# A relay run publishes every event committed before it starts, so a process asks for
# one at most once per window, plus one run at the window's end for the commits made
# inside it; under load that is a few messages a second per process instead of one a
# transaction. An event waits at most the window longer than it would for a run of its
# own. Beat's sweep (every 10 s) still sends what a lost message, or a worker whose
# clock runs ahead of this machine's, left behind.
RELAY_NUDGE_WINDOW = 0.5


class RelayNudges:
    """When this process last asked the broker for a relay run, and the latest start of
    a run it asked for with a countdown."""

    def __init__(self, window: float = RELAY_NUDGE_WINDOW) -> None:
        self.window = window
        self.sent_at = -math.inf
        self.pending_until = -math.inf
        self._lock = threading.Lock()

    def countdown(self, now: float) -> float | None:
        """The countdown for a nudge after a commit at `now` (monotonic seconds): 0 to
        send it at once, more to send it for the window's end, or None when a run this
        process asked for starts after `now` and will see the commit."""
        with self._lock:
            if self.pending_until > now:
                return None
            if now - self.sent_at >= self.window:
                return 0.0
            return self.sent_at + self.window - now

    def sent(self, now: float, countdown: float) -> None:
        """Note a nudge the broker took at `now` with `countdown`."""
        with self._lock:
            if countdown:
                self.pending_until = max(self.pending_until, now + countdown)
            else:
                self.sent_at = now


_relay_nudges = RelayNudges()


def _nudge_relay() -> None:
    from orchestration.tasks import relay_outbox

    now = time.monotonic()
    # An eager app runs the relay inline, so no run it asked for is ever still to come.
    eager = relay_outbox.app.conf.task_always_eager
    countdown = 0.0 if eager else _relay_nudges.countdown(now)
    if countdown is None:
        return
    try:
        if countdown:
            relay_outbox.apply_async(countdown=countdown)
        else:
            relay_outbox.delay()
    except Exception:  # the broker is down: beat's sweep sends the events later
        logger.warning("outbox relay not reachable; events stay queued", exc_info=True)
        return
    if not eager:
        _relay_nudges.sent(now, countdown)


# Enqueueing ------------------------------------------------------------------------


def _enqueue_step(step_run: StepRun, *, countdown: float = 0) -> None:
    """After commit, ask a worker to run the step run. Losing that message is safe: the
    durable kick timer set here enqueues it again if it has not started by then."""
    step_run_id, correlation_id = step_run.pk, str(step_run.case.correlation_id)
    _set_timer(
        kind=TimerKind.RETRY,
        case=step_run.case,
        step_run=step_run,
        due_at=timezone.now() + dt.timedelta(seconds=countdown + KICK_GRACE_SECONDS),
    )

    def send() -> None:
        from orchestration.tasks import execute_step

        try:
            execute_step.apply_async(
                args=(step_run_id,),
                countdown=countdown,
                headers={"correlation_id": correlation_id},
            )
        except Exception:
            logger.warning(
                "could not enqueue step run %s; the sweep will", step_run_id, exc_info=True
            )

    transaction.on_commit(send)


def _set_timer(
    *, kind: str, case: Case, step_run: StepRun | None, due_at: dt.datetime, **data: Any
) -> Timer:
    return Timer.objects.create(kind=kind, case=case, step_run=step_run, due_at=due_at, data=data)


def _cancel_timers(step_run: StepRun, *kinds: str) -> None:
    timers = Timer.objects.filter(
        step_run=step_run, fired_at__isnull=True, cancelled_at__isnull=True
    )
    if kinds:
        timers = timers.filter(kind__in=kinds)
    timers.update(cancelled_at=timezone.now())


# Cases -----------------------------------------------------------------------------


def _lock_case(case_id: Any) -> Case:
    # Every change to a case and its step runs takes this lock first, so two
    # concurrent advances of one case serialize and never run a step twice.
    return Case.objects.select_for_update().select_related("workflow").get(pk=case_id)


def _audit(case: Case, subject: Any, action: str, *, actor: ActorLike, **fields: Any) -> None:
    """An audit event about `subject`, in the case's chain, with its correlation id."""
    record(
        actor=actor,
        action=action,
        subject=subject,
        case_id=case.pk,
        correlation_id=case.correlation_id,
        **fields,
    )


def _lock_step_run(step_run_id: Any) -> tuple[Case, StepRun]:
    """Lock a step run's case (first, as everywhere) and then the step run itself."""
    case_id = StepRun.objects.filter(pk=step_run_id).values_list("case_id", flat=True).get()
    case = _lock_case(case_id)
    run = StepRun.objects.select_for_update().get(pk=step_run_id)
    run.case = case
    return case, run


def _set_case_status(case: Case, status: str, *, actor: ActorLike, reason: str = "") -> None:
    before = case.status
    case.move_to(status)
    if status in FINISHED_CASE_STATES:
        case.finished_at = timezone.now()
    case._change_reason = reason or f"{before} -> {status}"  # type: ignore[attr-defined]
    case.save(
        update_fields=[
            *("status", "outcome", "current_step", "finished_at"),
            *("updated_at", "proposed", "confidence"),
        ]
    )
    # case_cancel records the cancellation itself, with its reason.
    if status in FINISHED_CASE_STATES and status != CaseStatus.CANCELLED:
        _audit(
            case,
            case,
            AuditAction.CASE_COMPLETED,
            actor=actor,
            before={"status": before},
            after={"status": status, "outcome": case.outcome},
            reason=reason,
        )
    if status in FINISHED_CASE_STATES or status == CaseStatus.STALLED:
        outbox_publish(topic=f"case.{status}", case=case, payload={"outcome": case.outcome})


@transaction.atomic
def case_submit(
    *,
    workflow: str | Workflow,
    payload: Mapping[str, Any],
    actor: ActorLike,
    client: ApiClient | None = None,
    external_ref: str = "",
    proposed: Mapping[str, Any] | None = None,
    sources: list[Any] | None = None,
    confidence: float | None = None,
    impact: str = "medium",
    region: str = "",
    skills: list[str] | None = None,
    priority: int = 3,
) -> Case:
    """Create a case on the newest published version of `workflow` and start it.

    The case, its first step run, its audit event and its outbox event are written in
    one transaction; the worker is asked to run the step only after it commits.
    `workflow` is a slug, or the published version the caller looked up already.
    """
    if isinstance(workflow, Workflow):
        if not workflow.published:
            raise UnknownWorkflow(f"workflow {workflow} is not published", field="workflow")
        version = workflow
    else:
        version = latest_published(workflow)
    flow = definition_of(version)
    case = Case.objects.create(
        workflow=version,
        external_ref=external_ref,
        payload=dict(payload),
        proposed=dict(proposed or {}),
        sources=list(sources or []),
        confidence=confidence,
        impact=impact,
        region=region,
        skills=list(skills or []),
        priority=priority,
        submitted_by=_user_or_none(actor),
        client=client,
        current_step=flow.start,
    )
    chain_started(case.pk)
    # The case's first events (submitted, its first step, its work item) go in together.
    with audit_context(correlation_id=str(case.correlation_id)), audit_batch():
        record(
            actor=actor,
            action=AuditAction.CASE_SUBMITTED,
            subject=case,
            case_id=case.pk,
            after={
                "workflow": version.slug,
                "version": version.version,
                "external_ref": external_ref,
            },
        )
        outbox_publish(
            topic="case.submitted",
            case=case,
            payload={
                "workflow": version.slug,
                "workflow_version": version.version,
                "external_ref": external_ref,
            },
        )
        _start_step(case, flow.step(flow.start), actor=actor, first=True)
    logger.info(
        "case submitted",
        extra={"case_id": str(case.pk), "correlation_id": str(case.correlation_id)},
    )
    return case


def _start_step(case: Case, step: Step, *, actor: ActorLike, first: bool = False) -> StepRun:
    """Create the step run for `step` and set the case's status for it. Caller holds the
    lock. `first`: the case's first step, so no earlier step run exists."""
    case.current_step = step.id
    run = StepRun(case=case, step_id=step.id, kind=step.kind, handler=step.handler)
    if step.kind == "task":
        run.status = StepStatus.PENDING
        run.save()
        _set_case_status(case, CaseStatus.RUNNING, actor=actor)
        _enqueue_step(run)
    elif step.kind == "wait":
        run.status = StepStatus.WAITING
        run.started_at = timezone.now()
        run.save()
        if step.wait_seconds:
            _set_timer(
                kind=TimerKind.WAIT,
                case=case,
                step_run=run,
                due_at=run.started_at + dt.timedelta(seconds=step.wait_seconds),
            )
        _set_case_status(case, CaseStatus.WAITING, actor=actor)
    else:
        run.status = StepStatus.WAITING
        run.started_at = timezone.now()
        if step.kind == "review":
            # Decided before the INSERT, so the run is written once, gate included.
            run.gate = _gate_decide(case, step, first=first)
        run.save()
    _audit(
        case,
        run,
        AuditAction.STEP_STARTED,
        actor=actor,
        after={"step": step.id, "kind": step.kind, "status": run.status},
    )
    if step.kind == "review":
        _gate(case, step, run)
    return run


ReviewHook = Callable[..., Any]
_review_hooks: list[ReviewHook] = []


def register_review_hook(hook: ReviewHook) -> None:
    """Routing registers how human work is queued; called inside the gate's transaction
    as hook(case=, step_run=, kind=, routing=, sla=), so no review goes unqueued."""
    _review_hooks.append(hook)


def _hand_to_people(case: Case, run: StepRun, step: Step, *, kind: str) -> None:
    for hook in _review_hooks:
        hook(case=case, step_run=run, kind=kind, routing=dict(step.routing), sla=step.sla)


ReviewClosedHook = Callable[..., Any]
_review_closed_hooks: list[ReviewClosedHook] = []


def register_review_closed_hook(hook: ReviewClosedHook) -> None:
    """Routing registers how open human work of a review step run is withdrawn once the
    run is over (decided elsewhere, or the case cancelled): hook(step_run=, reason=)."""
    _review_closed_hooks.append(hook)


def _review_closed(run: StepRun, reason: str) -> None:
    for hook in _review_closed_hooks:
        hook(step_run=run, reason=reason)


def _gate_decide(case: Case, step: Step, *, first: bool = False) -> dict[str, Any]:
    """What the threshold grid says for this case at `step`: the policy version, the
    cell and the action, as stored on the step run."""
    policy = policy_for(case.workflow.slug, step.id)
    grid = policy_grid(policy)
    impact = case.impact
    if not first:
        previous = case.step_runs.filter(status=StepStatus.SUCCEEDED).last()
        output = previous.output if previous is not None else None
        if isinstance(output, Mapping) and output.get("impact") in IMPACTS:
            impact = output["impact"]
    cell = grid.decide(case.confidence, impact)
    version = policy.version if policy else 0
    sampled = cell.action == "auto" and is_sampled(str(case.pk), version, cell.sample_rate)
    return {
        "policy_id": policy.pk if policy else None,
        "policy_version": version,
        "policy_scope": (policy.step_id or "workflow") if policy else "built-in default",
        "confidence": case.confidence,
        "impact": impact,
        "band": cell.band,
        "cell": cell.label,
        "action": cell.action,
        "sample_rate": cell.sample_rate,
        "sampled": sampled,
    }


def _gate(case: Case, step: Step, run: StepRun) -> None:
    """The review gate: the threshold grid picks auto, review, four_eyes or block.

    Records on the step run (and in the audit trail) the policy version, the cell and
    the action, so later policy changes never alter a decision already taken. The
    decision is `run.gate`, set by `_gate_decide` before the run was first saved.
    """
    gate_actor = Actor.system("gate")
    gate: dict[str, Any] = run.gate or {}
    action, sampled = gate["action"], gate["sampled"]
    _audit(
        case,
        run,
        AuditAction.GATE_DECIDED,
        actor=gate_actor,
        after=run.gate,
    )
    if action == "auto":
        _finish_step(case, run, outcome="approve", output={"decided_by": "gate"}, actor=gate_actor)
        if sampled:
            outbox_publish(
                topic="qa.requested",
                case=case,
                payload={"step_run_id": run.pk, "step_id": step.id, "gate": run.gate},
            )
            _hand_to_people(case, run, step, kind="qa")
        _advance(case, run, "approve", actor=gate_actor)
    elif action == "block":
        run.move_to(StepStatus.CANCELLED)
        run.outcome = "blocked"
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "outcome", "finished_at"])
        case.outcome = "blocked"
        label = gate["cell"]
        _set_case_status(case, CaseStatus.BLOCKED, actor=gate_actor, reason=f"gate: {label}")
    else:  # review or four_eyes: hand it to people
        _set_case_status(case, CaseStatus.IN_REVIEW, actor=gate_actor)
        _hand_to_people(case, run, step, kind=action)
        outbox_publish(
            topic="review.requested",
            case=case,
            payload={
                "step_run_id": run.pk,
                "step_id": step.id,
                "routing": dict(step.routing),
                "sla": step.sla,
                "action": action,
                "gate": run.gate,
            },
        )


def _advance(case: Case, run: StepRun, outcome: str, *, actor: ActorLike) -> None:
    """Follow the transition for `outcome` of the finished step run `run`."""
    flow = definition_of(case.workflow)
    target = flow.target(run.step_id, outcome)
    if target.startswith(END_PREFIX):
        case.outcome = target[len(END_PREFIX) :]
        _set_case_status(case, case.outcome, actor=actor, reason=f"{run.step_id}: {outcome}")
        return
    _start_step(case, flow.step(target), actor=actor)


def _finish_step(
    case: Case, run: StepRun, *, outcome: str, output: Mapping[str, Any], actor: ActorLike
) -> None:
    run.move_to(StepStatus.SUCCEEDED)
    run.outcome = outcome
    run.output = dict(output)
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "outcome", "output", "finished_at"])
    _cancel_timers(run)
    if isinstance(output.get("proposed"), Mapping):
        case.proposed = {**case.proposed, **output["proposed"]}
    if isinstance(output.get("confidence"), int | float) and 0 <= output["confidence"] <= 1:
        case.confidence = float(output["confidence"])
    _audit(
        case,
        run,
        AuditAction.STEP_SUCCEEDED,
        actor=actor,
        after={"step": run.step_id, "outcome": outcome, "attempt": run.attempt},
    )


# Executing task steps -----------------------------------------------------------------


def _breaker_allows(handler: str, now: dt.datetime) -> dt.datetime | None:
    """None when the handler may run; else the time its breaker closes again."""
    breaker = CircuitBreaker.objects.filter(handler=handler).first()
    if breaker is None or breaker.state == BreakerState.CLOSED:
        return None
    if breaker.opened_until is not None and breaker.opened_until > now:
        return breaker.opened_until
    return None  # cool-down over: half-open, one attempt decides


def _breaker_record(handler: str, *, success: bool) -> None:
    if success:
        # A no-op UPDATE while healthy: no write to a hot row on every success.
        CircuitBreaker.objects.filter(handler=handler).exclude(
            state=BreakerState.CLOSED, consecutive_failures=0
        ).update(state=BreakerState.CLOSED, consecutive_failures=0, opened_until=None)
        return
    CircuitBreaker.objects.get_or_create(handler=handler)  # savepoint-safe under races
    breaker = CircuitBreaker.objects.select_for_update().get(handler=handler)
    breaker.consecutive_failures += 1
    if breaker.consecutive_failures >= settings.ARBITER_BREAKER_THRESHOLD:
        breaker.state = BreakerState.OPEN
        cooldown = dt.timedelta(seconds=settings.ARBITER_BREAKER_COOLDOWN_SECONDS)
        breaker.opened_until = timezone.now() + cooldown
    breaker.save()


def _step_of(run: StepRun) -> Step:
    flow = definition_of(run.case.workflow)
    return flow.step(run.step_id)


@transaction.atomic
def _begin_attempt(step_run_id: int) -> tuple[StepRun, StepContext, float] | None:
    run = StepRun.objects.select_related("case").filter(pk=step_run_id).first()
    if run is None:
        return None
    case = _lock_case(run.case_id)
    run = StepRun.objects.select_for_update().get(pk=step_run_id)
    run.case = case
    now = timezone.now()
    if run.status != StepStatus.PENDING:
        logger.info("step run %s is %s; nothing to do", run.pk, run.status)
        return None
    if run.next_attempt_at is not None and run.next_attempt_at > now:
        return None  # early: its retry timer will bring it back
    step = _step_of(run)
    closed_at = _breaker_allows(run.handler, now)
    if closed_at is not None:
        # The handler is failing everywhere: wait for the cool-down instead of
        # spending one of this step's attempts.
        run.next_attempt_at = closed_at
        run.save(update_fields=["next_attempt_at"])
        _set_timer(
            kind=TimerKind.RETRY, case=case, step_run=run, due_at=closed_at, reason="breaker open"
        )
        return None
    _cancel_timers(run, TimerKind.RETRY)
    run.move_to(StepStatus.RUNNING)
    run.attempt += 1
    run.started_at = run.started_at or now
    timeout = step.timeout or DEFAULT_STEP_TIMEOUT
    run.deadline = now + dt.timedelta(seconds=timeout)
    run.next_attempt_at = None
    run.save(update_fields=["status", "attempt", "started_at", "deadline", "next_attempt_at"])
    _set_timer(
        kind=TimerKind.TIMEOUT, case=case, step_run=run, due_at=run.deadline, attempt=run.attempt
    )
    outputs = {
        r.step_id: r.output
        for r in case.step_runs.filter(status=StepStatus.SUCCEEDED, is_compensation=False).order_by(
            "id"
        )
    }
    compensating = run.compensates.output if run.compensates_id and run.compensates else None
    ctx = StepContext.build(
        case_id=str(case.pk),
        step_id=run.step_id,
        handler=run.handler,
        payload=case.payload,
        outputs=outputs,
        correlation_id=str(case.correlation_id),
        attempt=run.attempt,
        idempotency_key=str(run.idempotency_key),
        proposed=case.proposed,
        compensating=compensating,
    )
    return run, ctx, timeout


def _run_handler(ctx: StepContext, timeout: float) -> dict[str, Any]:
    """Run the handler; a TimeoutError when it takes longer than `timeout` seconds.

    The handler runs in a helper thread so the worker can give up on it; a handler
    that overruns keeps running to its end in the background, which is safe only
    because handlers are idempotent (the next attempt dedupes on the same key).
    """
    spec = get_handler(ctx.handler)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"handler-{ctx.handler}")
    try:
        # The handler thread inherits this context: the trace (its HTTP calls join it)
        # and the correlation id of its log lines.
        future = pool.submit(contextvars.copy_context().run, spec.func, ctx)
        try:
            output = future.result(timeout=timeout)
        except FutureTimeout:
            raise TimeoutError(
                f"handler {ctx.handler!r} did not finish within {timeout:g}s"
            ) from None
    finally:
        pool.shutdown(wait=False)
    if not isinstance(output, Mapping):
        raise PermanentError(
            f"handler {ctx.handler!r} returned {type(output).__name__}, not a dict"
        )
    return dict(output)


def _span_attributes(ctx: StepContext) -> dict[str, str | int]:
    return {
        "arbiter.case_id": ctx.case_id,
        "arbiter.correlation_id": ctx.correlation_id,
        "arbiter.step_id": ctx.step_id,
        "arbiter.handler": ctx.handler,
        "arbiter.attempt": ctx.attempt,
    }


def step_run_execute(step_run_id: int) -> None:
    """Run one attempt of a pending step run. Safe to call twice: a run that is not
    pending (finished, running elsewhere, cancelled) is left alone."""
    begun = _begin_attempt(step_run_id)
    if begun is None:
        return
    run, ctx, timeout = begun
    worker_actor = Actor.system(f"worker:{run.handler}")
    with audit_context(correlation_id=ctx.correlation_id):
        logger.info(
            "running %s attempt %s", run.handler, run.attempt, extra={"case_id": ctx.case_id}
        )
        try:
            with tracing.span(f"handler {ctx.handler}", _span_attributes(ctx)):
                output = _run_handler(ctx, timeout)
        except Exception as exc:
            _attempt_failed(run.pk, run.attempt, exc, actor=worker_actor)
            return
        _attempt_succeeded(run.pk, run.attempt, output, actor=worker_actor)


@transaction.atomic
def _attempt_succeeded(
    step_run_id: int, attempt: int, output: dict[str, Any], *, actor: ActorLike
) -> None:
    case, run = _lock_step_run(step_run_id)
    if run.status != StepStatus.RUNNING or run.attempt != attempt:
        logger.info("discarding the result of stale attempt %s of step run %s", attempt, run.pk)
        return
    spec = get_handler(run.handler)
    outcome = str(output.get("outcome", "ok"))
    if not run.is_compensation and outcome not in spec.outcomes:
        _attempt_failed_locked(
            case,
            run,
            PermanentError(f"handler {run.handler!r} returned unknown outcome {outcome!r}"),
            actor=actor,
        )
        return
    _breaker_record(run.handler, success=True)
    _finish_step(case, run, outcome=outcome, output=output, actor=actor)
    if run.is_compensation:
        _continue_compensation(case, actor=actor)
    elif case.status in (CaseStatus.RUNNING,):
        _advance(case, run, outcome, actor=actor)


@transaction.atomic
def _attempt_failed(
    step_run_id: int, attempt: int, exc: BaseException, *, actor: ActorLike
) -> None:
    case, run = _lock_step_run(step_run_id)
    if run.status != StepStatus.RUNNING or run.attempt != attempt:
        return
    _attempt_failed_locked(case, run, exc, actor=actor)


def _attempt_failed_locked(
    case: Case, run: StepRun, exc: BaseException, *, actor: ActorLike
) -> None:
    step = _step_of(run)
    error = f"{type(exc).__name__}: {exc}"
    run.last_error = error
    _cancel_timers(run, TimerKind.TIMEOUT)
    if not isinstance(exc, PermanentError):
        _breaker_record(run.handler, success=False)
    if isinstance(exc, PermanentError) and not run.is_compensation:
        run.move_to(StepStatus.FAILED)
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "last_error", "finished_at"])
        _audit(
            case,
            run,
            AuditAction.STEP_FAILED,
            actor=actor,
            after={"step": run.step_id, "error": error, "attempt": run.attempt},
        )
        _compensate(case, actor=actor, reason=f"step {run.step_id} failed permanently: {error}")
        return
    if run.attempt < step.retry.max_attempts and not isinstance(exc, PermanentError):
        delay = retry_delay(step.retry, run.attempt)
        run.move_to(StepStatus.PENDING)
        run.next_attempt_at = timezone.now() + dt.timedelta(seconds=delay)
        run.save(update_fields=["status", "last_error", "next_attempt_at"])
        _set_timer(kind=TimerKind.RETRY, case=case, step_run=run, due_at=run.next_attempt_at)
        record(
            actor=actor,
            action=AuditAction.STEP_TIMED_OUT
            if isinstance(exc, TimeoutError)
            else AuditAction.STEP_RETRIED,
            subject=run,
            case_id=case.pk,
            correlation_id=case.correlation_id,
            after={
                "step": run.step_id,
                "error": error,
                "attempt": run.attempt,
                "retry_in": round(delay, 3),
            },
        )
        _enqueue_step(run, countdown=delay)
        return
    _dead_letter(case, run, exc, actor=actor)


def _dead_letter(case: Case, run: StepRun, exc: BaseException, *, actor: ActorLike) -> None:
    run.move_to(StepStatus.DEAD_LETTERED)
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "last_error", "finished_at"])
    letter = DeadLetter.objects.create(
        step_run=run,
        error_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
        message=str(exc),
        traceback="".join(traceback.format_exception(exc)),
        attempts=run.attempt,
    )
    _audit(
        case,
        run,
        AuditAction.STEP_DEAD_LETTERED,
        actor=actor,
        after={
            "step": run.step_id,
            "error": run.last_error,
            "attempts": run.attempt,
            "dead_letter": letter.pk,
        },
    )
    if run.is_compensation:
        _set_case_status(case, CaseStatus.COMPENSATION_FAILED, actor=actor, reason=run.last_error)
    else:
        _set_case_status(case, CaseStatus.STALLED, actor=actor, reason=run.last_error)
    outbox_publish(
        topic="step.dead_lettered",
        case=case,
        payload={
            "step_run_id": run.pk,
            "step_id": run.step_id,
            "dead_letter_id": letter.pk,
            "error": run.last_error,
        },
    )


@transaction.atomic
def step_run_timeout(step_run_id: int, attempt: int) -> None:
    """A running attempt passed its deadline (a hung handler or a dead worker): count it
    as a failed attempt."""
    case, run = _lock_step_run(step_run_id)
    if run.status != StepStatus.RUNNING or run.attempt != attempt:
        return
    _attempt_failed_locked(
        case,
        run,
        TimeoutError(f"attempt {attempt} of {run.step_id} passed its deadline"),
        actor=Actor.system("timer"),
    )


@transaction.atomic
def dead_letter_replay(*, dead_letter: DeadLetter, actor: ActorLike, reason: str = "") -> StepRun:
    """Give a dead-lettered step run a fresh set of attempts (audit-logged)."""
    letter = (
        DeadLetter.objects.select_for_update().select_related("step_run").get(pk=dead_letter.pk)
    )
    case = _lock_case(letter.step_run.case_id)
    run = StepRun.objects.select_for_update().get(pk=letter.step_run_id)
    run.case = case
    if letter.replayed_at is not None:
        raise Conflict(f"dead letter {letter.pk} was already replayed")
    if run.status != StepStatus.DEAD_LETTERED:
        raise Conflict(f"step run {run.pk} is {run.status}, not dead-lettered")
    run.move_to(StepStatus.PENDING)
    run.attempt = 0
    run.next_attempt_at = None
    run.finished_at = None
    run.save(update_fields=["status", "attempt", "next_attempt_at", "finished_at"])
    letter.replayed_at = timezone.now()
    letter.replayed_by = _user_or_none(actor)
    letter.save(update_fields=["replayed_at", "replayed_by"])
    _set_case_status(
        case,
        CaseStatus.COMPENSATING if run.is_compensation else CaseStatus.RUNNING,
        actor=actor,
        reason=reason or "dead letter replayed",
    )
    _audit(
        case,
        run,
        AuditAction.STEP_REPLAYED,
        actor=actor,
        after={"step": run.step_id, "dead_letter": letter.pk},
        reason=reason,
    )
    _enqueue_step(run)
    return run


# Sagas -----------------------------------------------------------------------------


def _needs_undo(case: Case) -> bool:
    flow = definition_of(case.workflow)
    return any(
        flow.step(r.step_id).compensate
        for r in case.step_runs.filter(
            is_compensation=False, status=StepStatus.SUCCEEDED, kind="task"
        )
    )


def _compensate(case: Case, *, actor: ActorLike, reason: str) -> None:
    """Start undoing the case's completed steps, newest first. Caller holds the lock."""
    case.outcome = ""
    _set_case_status(case, CaseStatus.COMPENSATING, actor=actor, reason=reason)
    _continue_compensation(case, actor=actor)


def _continue_compensation(case: Case, *, actor: ActorLike) -> None:
    """Start the next compensation, or finish the saga when none is left."""
    flow = definition_of(case.workflow)
    done = set(
        case.step_runs.filter(is_compensation=True, status=StepStatus.SUCCEEDED).values_list(
            "compensates_id", flat=True
        )
    )
    completed = case.step_runs.filter(
        is_compensation=False, status=StepStatus.SUCCEEDED, kind="task"
    ).order_by("-finished_at", "-id")
    for original in completed:
        step = flow.step(original.step_id)
        if not step.compensate or original.pk in done:
            continue
        run = StepRun.objects.create(
            case=case,
            step_id=original.step_id,
            kind="task",
            handler=step.compensate,
            is_compensation=True,
            compensates=original,
        )
        _audit(
            case,
            run,
            AuditAction.STEP_STARTED,
            actor=actor,
            after={"step": original.step_id, "compensation": step.compensate},
        )
        _enqueue_step(run)
        return
    _set_case_status(case, CaseStatus.COMPENSATED, actor=actor, reason="all compensations done")


@transaction.atomic
def case_cancel(*, case: Case, actor: ActorLike, reason: str = "") -> Case:
    """Stop a case: cancel its open step runs and timers, then undo completed steps.

    Ends `cancelled` when nothing needs undoing, else runs the saga. Raises
    CaseFinished (409) for a case that has already finished.
    """
    case = _lock_case(case.pk)
    if case.is_finished or case.status in (CaseStatus.COMPENSATING,):
        raise CaseFinished(f"case {case.pk} is {case.status} and cannot be cancelled")
    for run in case.step_runs.select_for_update().filter(
        status__in=[
            StepStatus.PENDING,
            StepStatus.RUNNING,
            StepStatus.WAITING,
            StepStatus.DEAD_LETTERED,
        ]
    ):
        run.move_to(StepStatus.CANCELLED)
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "finished_at"])
        _cancel_timers(run)
        if run.kind == "review":
            _review_closed(run, f"case cancelled: {reason}" if reason else "case cancelled")
    with audit_context(correlation_id=str(case.correlation_id)):
        record(
            actor=actor,
            action=AuditAction.CASE_CANCELLED,
            subject=case,
            case_id=case.pk,
            before={"status": case.status},
            reason=reason,
        )
        if _needs_undo(case):
            _compensate(case, actor=actor, reason=reason or "cancelled")
        else:
            case.outcome = "cancelled"
            _set_case_status(case, CaseStatus.CANCELLED, actor=actor, reason=reason or "cancelled")
    return case


# Signals and human decisions ------------------------------------------------------------


@transaction.atomic
def case_signal(*, case: Case, name: str, data: Mapping[str, Any] | None, actor: ActorLike) -> Case:
    """Deliver a named signal; resumes the wait step waiting for it (409 otherwise)."""
    case = _lock_case(case.pk)
    flow = definition_of(case.workflow)
    waiting = [
        r
        for r in case.step_runs.select_for_update().filter(status=StepStatus.WAITING, kind="wait")
        if flow.step(r.step_id).signal == name
    ]
    if not waiting:
        returned = _returned_review(case) if name == RESUBMITTED else None
        if returned is not None:
            with audit_context(correlation_id=str(case.correlation_id)):
                record(
                    actor=actor,
                    action=AuditAction.CASE_SIGNALLED,
                    subject=case,
                    case_id=case.pk,
                    after={"signal": name, "data": dict(data or {})},
                )
                _resubmit(case, returned, data or {}, actor=actor)
            return case
        raise NoSuchSignal(f"case {case.pk} is not waiting for signal {name!r}", field="name")
    run = waiting[0]
    run.case = case
    with audit_context(correlation_id=str(case.correlation_id)):
        record(
            actor=actor,
            action=AuditAction.CASE_SIGNALLED,
            subject=case,
            case_id=case.pk,
            after={"signal": name, "data": dict(data or {})},
        )
        _finish_step(
            case,
            run,
            outcome="signal",
            output={"signal": name, "data": dict(data or {})},
            actor=actor,
        )
        _set_case_status(case, CaseStatus.RUNNING, actor=actor, reason=f"signal {name}")
        _advance(case, run, "signal", actor=actor)
    return case


@transaction.atomic
def review_step_complete(
    *, step_run: StepRun, outcome: str, actor: ActorLike, output: Mapping[str, Any] | None = None
) -> Case:
    """Close a review step with "approve" or "reject" and move the case on.

    Called by routing/review when people have decided (or by the gate when the
    threshold grid decides automatically).
    """
    case, run = _lock_step_run(step_run.pk)
    if run.kind != "review" or run.status != StepStatus.WAITING:
        raise Conflict(f"step run {run.pk} is not a review waiting for a decision")
    if outcome not in wf_definition.REVIEW_OUTCOMES:
        raise ApplicationError(f"unknown review outcome {outcome!r}", field="outcome")
    with audit_context(correlation_id=str(case.correlation_id)):
        decided_by = (
            actor.name if isinstance(actor, Actor) else actor.get_username() if actor else "system"
        )
        decision = {**(output or {}), "verdict": outcome, "decided_by": decided_by}
        _finish_step(case, run, outcome=outcome, output=decision, actor=actor)
        _review_closed(run, f"review decided ({outcome}) by {decided_by}")
        _set_case_status(case, CaseStatus.RUNNING, actor=actor, reason=f"review: {outcome}")
        target = definition_of(case.workflow).target(run.step_id, outcome)
        if outcome == "reject" and target == f"{END_PREFIX}rejected" and _needs_undo(case):
            # A rejection undoes what earlier steps did (saga), then ends `compensated`.
            _compensate(case, actor=actor, reason=f"{run.step_id}: rejected by review")
            return case
        _advance(case, run, outcome, actor=actor)
    return case


RESUBMITTED = "resubmitted"


@transaction.atomic
def review_step_return(*, step_run: StepRun, to: str, instructions: str, actor: ActorLike) -> Case:
    """Send a review back for rework with what to fix.

    `to="previous"` runs the task step before the review again (its handler sees the
    instructions as outputs[review step]["instructions"]), after which the case comes
    back to the review. `to="submitter"` parks the case (waiting) and announces
    `case.returned`; the submitter resubmits with the signal `resubmitted` (payload
    changes in its data), which runs the review step's gate again.
    """
    case, run = _lock_step_run(step_run.pk)
    if run.kind != "review" or run.status != StepStatus.WAITING:
        raise Conflict(f"step run {run.pk} is not a review waiting for a decision")
    if not instructions.strip():
        raise ApplicationError("say what needs fixing", field="instructions")
    previous = None
    if to == "previous":
        previous = (
            case.step_runs.filter(
                kind="task",
                is_compensation=False,
                status=StepStatus.SUCCEEDED,
                created_at__lte=run.created_at,
            )
            .exclude(pk=run.pk)
            .order_by("-created_at", "-id")
            .first()
        )
        if previous is None:
            raise ApplicationError(
                "no task step ran before this review: return it to the submitter", field="to"
            )
    elif to != "submitter":
        raise ApplicationError("return to 'previous' or 'submitter'", field="to")
    with audit_context(correlation_id=str(case.correlation_id)):
        decided_by = (
            actor.name if isinstance(actor, Actor) else actor.get_username() if actor else "system"
        )
        output = {
            "verdict": "return",
            "to": to,
            "instructions": instructions.strip(),
            "decided_by": decided_by,
        }
        _finish_step(case, run, outcome="return", output=output, actor=actor)
        _review_closed(run, f"returned for rework by {decided_by}")
        if previous is not None:
            _set_case_status(case, CaseStatus.RUNNING, actor=actor, reason="returned for rework")
            _start_step(case, definition_of(case.workflow).step(previous.step_id), actor=actor)
        else:
            case.current_step = run.step_id
            _set_case_status(
                case, CaseStatus.WAITING, actor=actor, reason="returned to the submitter"
            )
            outbox_publish(
                topic="case.returned",
                case=case,
                payload={"step_id": run.step_id, "instructions": output["instructions"]},
            )
    return case


def _returned_review(case: Case) -> StepRun | None:
    """The review run that returned this case to its submitter, if it waits for rework."""
    last_review = case.step_runs.filter(kind="review").order_by("-created_at", "-id").first()
    if (
        case.status != CaseStatus.WAITING
        or last_review is None
        or last_review.outcome != "return"
        or (last_review.output or {}).get("to") != "submitter"
    ):
        return None
    return last_review


def _resubmit(case: Case, returned: StepRun, data: Mapping[str, Any], *, actor: ActorLike) -> None:
    """Merge the submitter's changes and run the returned review step (its gate) again."""
    payload = data.get("payload")
    if payload is not None and not isinstance(payload, Mapping):
        raise ApplicationError("payload must be an object of changed fields", field="data.payload")
    if payload:
        case.payload = {**case.payload, **payload}
        case.save(update_fields=["payload", "updated_at"])
    _set_case_status(case, CaseStatus.RUNNING, actor=actor, reason="resubmitted after rework")
    _start_step(case, definition_of(case.workflow).step(returned.step_id), actor=actor)


# Timers -----------------------------------------------------------------------------


def timers_fire_due(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Fire every due timer once; returns how many this call fired.

    Two sweeps may run at once: each timer is claimed with a compare-and-swap on
    fired_at, so exactly one of them handles it.
    """
    now = now or timezone.now()
    fired = 0
    due = Timer.objects.filter(
        fired_at__isnull=True, cancelled_at__isnull=True, due_at__lte=now
    ).order_by("due_at")
    for timer_id in list(due.values_list("id", flat=True)[:limit]):
        claimed = Timer.objects.filter(
            id=timer_id, fired_at__isnull=True, cancelled_at__isnull=True
        ).update(fired_at=timezone.now())
        if not claimed:
            continue
        fired += 1
        timer = Timer.objects.select_related("step_run").get(pk=timer_id)
        try:
            _TIMER_HANDLERS[timer.kind](timer, now)
        except Exception:
            logger.exception("timer %s (%s) failed", timer.pk, timer.kind)
    return fired


def _fire_retry(timer: Timer, now: dt.datetime) -> None:
    if timer.step_run_id is None:
        return
    from orchestration.tasks import execute_step

    try:
        execute_step.apply_async(args=(timer.step_run_id,))
    except Exception:
        # Broker down: un-fire the timer so the next sweep tries again.
        Timer.objects.filter(pk=timer.pk).update(fired_at=None)
        raise


def _fire_timeout(timer: Timer, now: dt.datetime) -> None:
    if timer.step_run_id is not None:
        step_run_timeout(timer.step_run_id, int(timer.data.get("attempt", 0)))


@transaction.atomic
def _fire_wait(timer: Timer, now: dt.datetime) -> None:
    if timer.step_run_id is None:
        return
    case = _lock_case(timer.case_id)
    run = StepRun.objects.select_for_update().get(pk=timer.step_run_id)
    run.case = case
    if run.status != StepStatus.WAITING:
        return
    actor = Actor.system("timer")
    with audit_context(correlation_id=str(case.correlation_id)):
        _finish_step(
            case, run, outcome="timeout", output={"timed_out_at": now.isoformat()}, actor=actor
        )
        _set_case_status(case, CaseStatus.RUNNING, actor=actor, reason="wait timed out")
        _advance(case, run, "timeout", actor=actor)


SlaHook = Callable[[Timer], None]
_sla_hooks: list[SlaHook] = []


def register_sla_hook(hook: SlaHook) -> None:
    """Routing registers what an SLA timer does (warn, breach, escalate)."""
    _sla_hooks.append(hook)


def _fire_sla(timer: Timer, now: dt.datetime) -> None:
    for hook in _sla_hooks:
        hook(timer)


_TIMER_HANDLERS: dict[str, Callable[[Timer, dt.datetime], None]] = {
    TimerKind.RETRY: _fire_retry,
    TimerKind.TIMEOUT: _fire_timeout,
    TimerKind.WAIT: _fire_wait,
    TimerKind.SLA: _fire_sla,
}


# QA of automatic decisions ---------------------------------------------------------------


@transaction.atomic
def qa_finding_record(*, step_run: StepRun, reviewer: Any, agrees: bool, note: str = "") -> Any:
    """A QA reviewer's verdict on a sampled automatic approval; a disagreement needs a
    note. The calibration report counts these per cell and policy version."""
    from orchestration.models import QaFinding

    run = StepRun.objects.select_related("case").get(pk=step_run.pk)
    gate = run.gate or {}
    if gate.get("action") != "auto":
        raise Conflict(f"step run {run.pk} was not approved automatically")
    if not agrees and not note.strip():
        raise ApplicationError("say what is wrong with the automatic approval", field="note")
    if QaFinding.objects.filter(step_run=run, reviewer=reviewer).exists():
        raise Conflict("this reviewer has already checked this approval")
    finding = QaFinding.objects.create(
        step_run=run,
        reviewer=reviewer,
        agrees=agrees,
        note=note,
        policy_version=int(gate.get("policy_version", 0)),
        cell=str(gate.get("cell", "")),
    )
    record(
        actor=reviewer,
        action=AuditAction.QA_RECORDED,
        subject=finding,
        case_id=run.case_id,
        correlation_id=run.case.correlation_id,
        after={"agrees": agrees, "cell": finding.cell, "policy_version": finding.policy_version},
        reason=note,
    )
    return finding
