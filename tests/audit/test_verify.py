"""Tampering with the trail, as someone who can switch the triggers off, is caught."""

import datetime as dt

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from audit.context import Actor, audit_context
from audit.models import AuditAction, AuditEvent
from audit.services import checkpoint_create, record
from audit.triggers import triggers_disabled
from audit.verification import verify

pytestmark = pytest.mark.django_db

worker = Actor.system("worker:test")


@pytest.fixture
def trail(alice):
    """Three cases of four events each, and global events (alice's creation among them)."""
    for case in ("C-1", "C-2", "C-3"):
        for action in (
            AuditAction.CASE_SUBMITTED,
            AuditAction.STEP_STARTED,
            AuditAction.STEP_SUCCEEDED,
            AuditAction.CASE_COMPLETED,
        ):
            record(actor=worker, action=action, case_id=case, after={"case": case})
    record(actor=alice, action=AuditAction.POLICY_CHANGED, reason="tighter grid")
    record(actor=alice, action=AuditAction.QUEUE_CHANGED, reason="more room")


def _tamper(sql: str, params: list[str | int]) -> None:
    with triggers_disabled(connection), connection.cursor() as cursor:
        cursor.execute(sql, params)


def _event(case: str, seq: int) -> AuditEvent:
    return AuditEvent.objects.get(chain=f"case:{case}", chain_seq=seq)


def test_an_untouched_trail_verifies(trail, capsys):
    checkpoint_create()
    call_command("audit_verify")
    out = capsys.readouterr().out
    total = AuditEvent.objects.count()
    assert f"OK: {total} events in 4 chains verified, checkpoint #" in out


def test_editing_one_row_is_reported_as_exactly_that_event(trail):
    victim = _event("C-2", 3)
    _tamper(
        "UPDATE audit_auditevent SET after = %s WHERE id = %s", ['{"case": "forged"}', victim.pk]
    )
    result = verify()
    assert result.first_break is not None
    assert result.first_break.event_id == victim.pk
    assert "content does not match its hash" in result.first_break.problem
    with pytest.raises(CommandError, match=f"event #{victim.pk} ") as excinfo:
        call_command("audit_verify")
    assert excinfo.value.returncode == 1


def test_rehashing_an_edited_row_breaks_the_next_link(trail):
    from audit.hashing import event_hash

    victim = _event("C-1", 2)
    fields = victim.hashed_fields() | {"reason": "forged"}
    _tamper(
        "UPDATE audit_auditevent SET reason = %s, hash = %s WHERE id = %s",
        ["forged", event_hash(fields), victim.pk],
    )
    result = verify()
    assert result.first_break is not None
    assert result.first_break.event_id == _event("C-1", 3).pk
    assert "prev_hash does not match" in result.first_break.problem


def test_deleting_an_event_in_the_middle_is_reported(trail):
    victim = _event("C-3", 2)
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [victim.pk])
    result = verify()
    assert result.first_break is not None
    assert result.first_break.event_id == _event("C-3", 3).pk
    assert "expected position 2" in result.first_break.problem


def test_deleting_a_whole_chain_is_reported_by_the_checkpoint(trail):
    checkpoint = checkpoint_create()
    total = AuditEvent.objects.count()
    _tamper("DELETE FROM audit_auditevent WHERE chain = %s", ["case:C-2"])
    result = verify()
    assert result.first_break is None  # every remaining link is intact...
    assert result.checkpoint_problem is not None  # ...but the heads no longer match
    assert result.checkpoint_problem.checkpoint_id == checkpoint.pk
    assert f"4 chains and {total} events" in result.checkpoint_problem.problem
    assert f"3 chains and {total - 4} events" in result.checkpoint_problem.problem
    with pytest.raises(CommandError, match=f"checkpoint #{checkpoint.pk}"):
        call_command("audit_verify")


def test_cutting_the_newest_events_of_a_chain_is_reported_by_the_checkpoint(trail):
    checkpoint_create()
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [_event("C-1", 4).pk])
    assert verify().checkpoint_problem is not None


def test_events_after_the_checkpoint_do_not_upset_it(trail):
    checkpoint_create()
    record(actor=worker, action=AuditAction.CASE_SIGNALLED, case_id="C-1")
    record(actor=worker, action=AuditAction.CASE_SUBMITTED, case_id="C-9")
    assert verify().ok


def test_removing_a_checkpoint_is_reported(trail):
    first = checkpoint_create()
    checkpoint_create()
    _tamper("DELETE FROM audit_auditcheckpoint WHERE id = %s", [first.pk])
    result = verify()
    assert result.checkpoint_problem is not None
    assert "does not link" in result.checkpoint_problem.problem


def test_one_case_can_be_verified_alone(trail, capsys):
    _tamper("UPDATE audit_auditevent SET reason = 'x' WHERE id = %s", [_event("C-1", 1).pk])
    call_command("audit_verify", "--case", "C-2")
    assert "OK: 4 events in 1 chains verified" in capsys.readouterr().out
    with pytest.raises(CommandError):
        call_command("audit_verify", "--case", "C-1")


def test_the_checkpoint_task_stores_a_checkpoint(trail):
    from audit.models import AuditCheckpoint
    from audit.tasks import checkpoint

    checkpoint_id = checkpoint.delay().get()
    stored = AuditCheckpoint.objects.get(pk=checkpoint_id)
    assert (stored.chain_count, stored.event_count) == (4, AuditEvent.objects.count())


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_verification_adds_up_to_the_same_answer(alice):
    for n in range(12):
        for action in (AuditAction.CASE_SUBMITTED, AuditAction.STEP_STARTED):
            with transaction.atomic():
                record(actor=worker, action=action, case_id=f"P-{n:02d}", after={"n": n})
    checkpoint_create()
    sequential, parallel = verify(), verify(jobs=3)
    assert parallel.ok and sequential.ok
    assert (parallel.events_checked, parallel.chains_checked) == (
        sequential.events_checked,
        sequential.chains_checked,
    )
    assert parallel.checkpoint_id == sequential.checkpoint_id
    victim = _event("P-07", 2)
    _tamper("UPDATE audit_auditevent SET reason = 'forged' WHERE id = %s", [victim.pk])
    broken = verify(jobs=3)
    assert broken.first_break is not None and broken.first_break.event_id == victim.pk
    _tamper("DELETE FROM audit_auditevent WHERE chain = %s", ["case:P-03"])
    _tamper("UPDATE audit_auditevent SET reason = '' WHERE id = %s", [victim.pk])
    assert verify(jobs=3).checkpoint_problem is not None


AWKWARD = {
    "zeta": [1, 2.5, None, True, {"b": "ß", "a": '\u2028 line\nbreak "quoted" \\ slash'}],
    "Ärger": {"nested": {"z": 0, "a": -1.25e-07}},
    "emoji": "\U0001f600 \x01 control \t tab",
    "": "",
}


def test_awkward_content_verifies_and_an_edit_to_it_is_caught(alice, monkeypatch):
    import audit.verification as verification

    with audit_context(request_id='r-"1"\\', client_ip="::1", correlation_id="c\u00e9"):
        event = record(
            actor=alice,
            action=AuditAction.CASE_SUBMITTED,
            case_id="C-\u00fc",
            before={"x": "\u00e9t\u00e9"},
            after=AWKWARD,
            reason='line one\nline "two" \u2603',
        )
    # Every event reads back through the fast path: event_hash (the reference) is
    # only asked about a mismatch, and there is none.
    calls: list[object] = []
    original = verification.event_hash

    def counted(fields):
        calls.append(fields)
        return original(fields)

    monkeypatch.setattr(verification, "event_hash", counted)
    assert verify().ok
    assert calls == []
    moved = event.occurred_at + dt.timedelta(microseconds=1)
    _tamper(
        "UPDATE audit_auditevent SET occurred_at = %s WHERE id = %s",
        [str(connection.ops.adapt_datetimefield_value(moved)), event.pk],
    )
    result = verify()
    assert result.first_break is not None and result.first_break.event_id == event.pk
    assert "content does not match its hash" in result.first_break.problem


def test_whole_floats_with_an_exponent_verify_as_the_database_gives_them_back(alice):
    values = {"big": 1e16, "neg": -2.5e20, "one": 1.0, "tiny": 2.5e-07, "in": [3e30]}
    event = record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="F-1", after=values)
    assert event.after == {
        "big": 10**16,
        "neg": -25 * 10**19,
        "one": 1.0,
        "tiny": 2.5e-07,
        "in": [3 * 10**30],
    }
    assert verify(case_id="F-1").ok
