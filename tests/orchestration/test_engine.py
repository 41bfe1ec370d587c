import datetime as dt
import itertools

import pytest
from django.utils import timezone

from audit.context import Actor
from audit.models import AuditAction, AuditEvent
from orchestration import services
from orchestration.models import (
    CASE_TRANSITIONS,
    STEP_TRANSITIONS,
    Case,
    CaseStatus,
    CircuitBreaker,
    DeadLetter,
    InvalidTransition,
    OutboxEvent,
    StepRun,
    StepStatus,
    Timer,
    TimerKind,
)
from tests.orchestration.conftest import (
    calls,
    effects,
    failures_left,
    three_tasks,
    undo_order,
    with_wait_and_review,
)

pytestmark = pytest.mark.django_db

api = Actor.api_client(1, "erp")


def submit(slug="three-tasks", **kwargs):
    return services.case_submit(workflow=slug, payload={"amount": "120.00"}, actor=api, **kwargs)


def runs(case):
    return list(case.step_runs.order_by("id").values_list("step_id", "status", "attempt"))


def test_submitting_writes_case_step_audit_and_outbox_and_enqueues_only_on_commit(
    flow, django_capture_on_commit_callbacks
):
    flow(three_tasks())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        case = submit(external_ref="INV-1")
    assert case.status == CaseStatus.RUNNING
    assert runs(case) == [("collect", StepStatus.PENDING, 0)]
    assert AuditEvent.objects.filter(
        case_id=str(case.pk), action=AuditAction.CASE_SUBMITTED
    ).exists()
    assert OutboxEvent.objects.filter(case=case, topic="case.submitted").exists()
    assert calls["test.collect"] == 0  # nothing ran before the commit
    assert callbacks  # the enqueue waits for the commit


def test_an_unknown_workflow_is_refused_and_nothing_is_written(flow):
    with pytest.raises(services.UnknownWorkflow) as excinfo:
        services.case_submit(workflow="nope", payload={}, actor=api)
    assert excinfo.value.field == "workflow"
    assert not Case.objects.exists()


def test_a_three_task_workflow_runs_to_approved(flow, run_all):
    flow(three_tasks())
    case = run_all(submit)
    case.refresh_from_db()
    assert case.status == CaseStatus.APPROVED
    assert case.outcome == "approved"
    assert [r[:2] for r in runs(case)] == [
        ("collect", StepStatus.SUCCEEDED),
        ("reserve", StepStatus.SUCCEEDED),
        ("finish", StepStatus.SUCCEEDED),
    ]
    assert case.proposed == {"amount": "120.00"}
    assert case.confidence == pytest.approx(0.91)
    assert OutboxEvent.objects.filter(case=case, topic="case.approved").exists()
    actions = list(
        AuditEvent.objects.filter(case_id=str(case.pk))
        .order_by("chain_seq")
        .values_list("action", flat=True)
    )
    assert actions[0] == "case.submitted"
    assert actions[-1] == "case.completed"
    assert actions.count("step.succeeded") == 3


def test_every_event_of_the_case_carries_its_correlation_id(flow, run_all):
    flow(three_tasks())
    case = run_all(submit)
    ids = set(
        AuditEvent.objects.filter(case_id=str(case.pk)).values_list("correlation_id", flat=True)
    )
    assert ids == {str(case.correlation_id)}
    outbox = set(OutboxEvent.objects.filter(case=case).values_list("correlation_id", flat=True))
    assert outbox == {str(case.correlation_id)}


@pytest.mark.parametrize(("current", "new"), list(itertools.product(CaseStatus.values, repeat=2)))
def test_case_transitions_follow_the_table(current, new):
    case = Case(status=current)
    if new in CASE_TRANSITIONS.get(current, ()):
        case.move_to(new)
        assert case.status == new
    else:
        with pytest.raises(InvalidTransition):
            case.move_to(new)
        assert case.status == current


@pytest.mark.parametrize(("current", "new"), list(itertools.product(StepStatus.values, repeat=2)))
def test_step_transitions_follow_the_table(current, new):
    run = StepRun(status=current)
    if new in STEP_TRANSITIONS.get(current, ()):
        run.move_to(new)
        assert run.status == new
    else:
        with pytest.raises(InvalidTransition):
            run.move_to(new)
        assert run.status == current


def test_a_flaky_step_is_retried_until_it_succeeds(flow, run_all, no_backoff):
    flow(three_tasks())
    failures_left["test.flaky"] = 2
    case = run_all(submit)
    case.refresh_from_db()
    assert case.status == CaseStatus.APPROVED
    finish = case.step_runs.get(step_id="finish")
    assert finish.attempt == 3
    retried = AuditEvent.objects.filter(case_id=str(case.pk), action=AuditAction.STEP_RETRIED)
    assert retried.count() == 2
    first_retry = retried.order_by("id").first()
    assert first_retry is not None
    assert first_retry.after["error"].startswith("ConnectionError")


def test_the_last_failed_attempt_dead_letters_and_stalls_the_case(flow, run_all, no_backoff):
    flow(three_tasks())
    failures_left["test.flaky"] = 99
    case = run_all(submit)
    case.refresh_from_db()
    assert case.status == CaseStatus.STALLED
    finish = case.step_runs.get(step_id="finish")
    assert (finish.status, finish.attempt) == (StepStatus.DEAD_LETTERED, 3)
    letter = DeadLetter.objects.get(step_run=finish)
    assert (letter.error_type, letter.attempts) == ("builtins.ConnectionError", 3)
    assert "downstream refused" in letter.message
    assert "Traceback" in letter.traceback
    assert OutboxEvent.objects.filter(case=case, topic="step.dead_lettered").exists()


def test_replaying_a_dead_letter_gives_fresh_attempts_and_is_audited(
    flow, run_all, no_backoff, maria
):
    flow(three_tasks())
    failures_left["test.flaky"] = 3
    case = run_all(submit)
    letter = DeadLetter.objects.get()
    run_all(services.dead_letter_replay, dead_letter=letter, actor=maria, reason="downstream fixed")
    case.refresh_from_db()
    letter.refresh_from_db()
    assert case.status == CaseStatus.APPROVED
    assert letter.replayed_by == maria
    replayed = AuditEvent.objects.get(action=AuditAction.STEP_REPLAYED)
    assert (replayed.actor_name, replayed.reason) == ("maria", "downstream fixed")
    with pytest.raises(services.Conflict):
        services.dead_letter_replay(dead_letter=letter, actor=maria)


def test_a_permanent_failure_compensates_completed_steps_in_reverse_order(flow, run_all):
    flow(three_tasks(final="test.doomed"))
    case = run_all(submit)
    case.refresh_from_db()
    assert case.status == CaseStatus.COMPENSATED
    assert undo_order == ["reserve:R-", "collect"]
    assert calls["test.doomed"] == 1  # a permanent error is not retried
    assert case.step_runs.get(step_id="finish", is_compensation=False).status == StepStatus.FAILED


def test_a_compensation_that_keeps_failing_ends_compensation_failed_with_a_dead_letter(
    flow, run_all, no_backoff
):
    flow(three_tasks(final="test.doomed"))
    failures_left["test.undo_reserve"] = 99
    case = run_all(submit)
    case.refresh_from_db()
    assert case.status == CaseStatus.COMPENSATION_FAILED
    letter = DeadLetter.objects.get()
    assert letter.step_run.is_compensation
    assert "collect" not in undo_order  # the saga stops at the failed compensation
    failures_left["test.undo_reserve"] = 0
    run_all(services.dead_letter_replay, dead_letter=letter, actor=Actor.system("ops"))
    case.refresh_from_db()
    assert case.status == CaseStatus.COMPENSATED
    assert undo_order[-1] == "collect"


def test_cancelling_runs_compensations_and_a_finished_case_cannot_be_cancelled(flow, run_all):
    flow(with_wait_and_review() | {"slug": "wr"})
    flow(three_tasks())
    waiting = run_all(submit, "wr")
    waiting.refresh_from_db()
    assert waiting.status == CaseStatus.WAITING
    cancelled = run_all(services.case_cancel, case=waiting, actor=api, reason="customer withdrew")
    assert cancelled.status == CaseStatus.CANCELLED  # nothing to undo
    assert waiting.step_runs.get(step_id="docs").status == StepStatus.CANCELLED
    assert not Timer.objects.filter(
        case=waiting, fired_at__isnull=True, cancelled_at__isnull=True
    ).exists()
    with pytest.raises(services.CaseFinished):
        services.case_cancel(case=waiting, actor=api)


def test_cancelling_a_stalled_case_undoes_what_it_did(flow, run_all, no_backoff):
    flow(three_tasks())
    failures_left["test.flaky"] = 99
    case = run_all(submit)
    run_all(services.case_cancel, case=case, actor=api, reason="give up")
    case.refresh_from_db()
    assert case.status == CaseStatus.COMPENSATED
    assert undo_order == ["reserve:R-", "collect"]
    cancel = AuditEvent.objects.get(case_id=str(case.pk), action=AuditAction.CASE_CANCELLED)
    assert cancel.reason == "give up"


def test_a_duplicate_message_for_a_finished_step_run_does_nothing(flow, run_all):
    flow(three_tasks())
    case = run_all(submit)
    collect = case.step_runs.get(step_id="collect")
    before = AuditEvent.objects.count()
    run_all(services.step_run_execute, collect.pk)
    run_all(services.step_run_execute, collect.pk)
    assert calls["test.collect"] == 1
    assert AuditEvent.objects.count() == before


def test_a_worker_crash_mid_attempt_is_recovered_by_the_timeout_with_one_effect(
    flow, run_all, no_backoff
):
    flow(three_tasks())
    case = submit()  # on-commit enqueue discarded: the message is "lost"
    collect = case.step_runs.get()
    begun = services._begin_attempt(collect.pk)  # a worker took it, then died
    assert begun is not None
    collect.refresh_from_db()
    assert collect.status == StepStatus.RUNNING
    # The broker redelivers (acks_late): the step run is running, so it is left alone.
    services.step_run_execute(collect.pk)
    assert calls["test.collect"] == 0
    # Its deadline passes: the timeout counts as a failed attempt and it is retried.
    later = collect.deadline + dt.timedelta(seconds=1)
    run_all(services.timers_fire_due, now=later)
    case.refresh_from_db()
    assert case.status == CaseStatus.APPROVED
    assert calls["test.collect"] == 1
    assert len(effects["test.collect"]) == 1
    assert (
        AuditEvent.objects.filter(case_id=str(case.pk), action=AuditAction.STEP_TIMED_OUT).count()
        == 1
    )


def test_a_handler_that_overruns_its_timeout_fails_the_attempt(flow, run_all, no_backoff):
    flow(three_tasks(final="test.slow"))
    failures_left["test.slow"] = 1  # the first attempt sleeps past the 0.3 s timeout
    case = run_all(submit)
    case.refresh_from_db()
    assert case.status == CaseStatus.APPROVED
    assert case.step_runs.get(step_id="finish").attempt == 2
    timed_out = AuditEvent.objects.get(case_id=str(case.pk), action=AuditAction.STEP_TIMED_OUT)
    assert timed_out.after is not None
    assert "did not finish within 0.3s" in timed_out.after["error"]


def test_an_open_breaker_makes_step_runs_wait_instead_of_burning_attempts(
    flow, run_all, no_backoff, settings
):
    settings.ARBITER_BREAKER_THRESHOLD = 3
    flow(three_tasks())
    failures_left["test.flaky"] = 99
    first = run_all(submit)
    assert CircuitBreaker.objects.get(handler="test.flaky").state == "open"
    second = run_all(submit)
    finish = second.step_runs.get(step_id="finish")
    assert (finish.status, finish.attempt) == (StepStatus.PENDING, 0)
    breaker = CircuitBreaker.objects.get(handler="test.flaky")
    assert finish.next_attempt_at == breaker.opened_until
    # After the cool-down the handler works again: the waiting run goes through.
    failures_left["test.flaky"] = 0
    run_all(services.timers_fire_due, now=breaker.opened_until + dt.timedelta(seconds=1))
    # The timer fired at the cool-down; the run starts once the real clock passes it.
    CircuitBreaker.objects.filter(handler="test.flaky").update(opened_until=timezone.now())
    StepRun.objects.filter(pk=finish.pk).update(next_attempt_at=timezone.now())
    run_all(services.step_run_execute, finish.pk)
    second.refresh_from_db()
    assert second.status == CaseStatus.APPROVED
    assert CircuitBreaker.objects.get(handler="test.flaky").state == "closed"
    first.refresh_from_db()
    assert first.status == CaseStatus.STALLED


def test_a_timer_fires_once_even_when_two_sweeps_run(flow, run_all):
    flow(with_wait_and_review())
    case = run_all(submit, "wait-review")
    timer = Timer.objects.get(case=case, kind=TimerKind.WAIT)
    later = timer.due_at + dt.timedelta(seconds=1)
    first = run_all(services.timers_fire_due, now=later)
    second = run_all(services.timers_fire_due, now=later)
    assert first >= 1  # the wait timer (and any due kick timers)
    assert second == 0
    case.refresh_from_db()
    assert case.status == CaseStatus.REJECTED  # the wait timed out
    assert (
        AuditEvent.objects.filter(case_id=str(case.pk), action=AuditAction.CASE_COMPLETED).count()
        == 1
    )


def test_a_signal_resumes_the_waiting_step_and_a_wrong_one_is_refused(flow, run_all):
    flow(with_wait_and_review())
    case = run_all(submit, "wait-review")
    with pytest.raises(services.NoSuchSignal):
        services.case_signal(case=case, name="payment_received", data={}, actor=api)
    run_all(
        services.case_signal, case=case, name="documents_received", data={"pages": 3}, actor=api
    )
    case.refresh_from_db()
    assert case.status == CaseStatus.IN_REVIEW
    review = case.step_runs.get(step_id="check")
    assert review.status == StepStatus.WAITING
    assert OutboxEvent.objects.filter(case=case, topic="review.requested").exists()
    assert Timer.objects.get(case=case, kind=TimerKind.WAIT).cancelled_at is not None


def test_a_review_decision_moves_the_case_on(flow, run_all, bob):
    flow(with_wait_and_review())
    case = run_all(submit, "wait-review")
    run_all(services.case_signal, case=case, name="documents_received", data=None, actor=api)
    review = case.step_runs.get(step_id="check")
    run_all(services.review_step_complete, step_run=review, outcome="approve", actor=bob)
    case.refresh_from_db()
    assert case.status == CaseStatus.APPROVED
    review.refresh_from_db()
    assert review.output == {"verdict": "approve", "decided_by": "bob"}
    with pytest.raises(services.Conflict):
        services.review_step_complete(step_run=review, outcome="reject", actor=bob)


def test_outcomes_pick_the_transition(flow, run_all):
    flow(with_wait_and_review())
    small = run_all(
        services.case_submit, workflow="wait-review", payload={"amount": "5"}, actor=api
    )
    small.refresh_from_db()
    assert small.status == CaseStatus.APPROVED


def test_a_case_keeps_the_workflow_version_it_started_on(flow, run_all):
    first = flow(three_tasks())
    case = submit()
    second = flow(three_tasks() | {"title": "Three tasks, revised"})
    assert (first.version, second.version) == (1, 2)
    case.refresh_from_db()
    assert case.workflow_id == first.pk
    assert submit().workflow_id == second.pk
