import threading
import uuid

import pytest
from django.db import connection, transaction

from audit import services as audit_services
from audit.context import Actor, audit_context
from audit.hashing import GENESIS_HASH, event_hash
from audit.models import AppendOnlyError, AuditAction, AuditEvent
from audit.services import AuditError, record
from audit.verification import verify

pytestmark = pytest.mark.django_db


def test_events_of_one_case_form_a_chain_and_the_rest_a_global_one(alice):
    first = record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="C-1")
    second = record(actor=alice, action=AuditAction.STEP_STARTED, case_id="C-1")
    other = record(
        actor=alice, action=AuditAction.POLICY_CHANGED, object_type="policy", object_id=7
    )
    assert (first.chain, first.chain_seq, first.prev_hash) == ("case:C-1", 1, GENESIS_HASH)
    assert (second.chain, second.chain_seq, second.prev_hash) == ("case:C-1", 2, first.hash)
    assert other.chain == "global"
    assert second.pk > first.pk  # the id is the global sequence


def test_the_hash_covers_the_event_and_the_previous_hash(alice):
    event = record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="C-2", after={"a": 1})
    stored = AuditEvent.objects.get(pk=event.pk)
    assert event_hash(stored.hashed_fields()) == stored.hash
    assert len(stored.hash) == 64


def test_values_are_hashed_as_they_read_back_from_the_database(alice):
    import datetime as dt
    import decimal

    event = record(
        actor=alice,
        action=AuditAction.CASE_SUBMITTED,
        case_id="C-3",
        after={
            "amount": decimal.Decimal("1200.50"),
            "at": dt.date(2026, 1, 2),
            "id": uuid.UUID(int=5),
        },
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.after == {"amount": "1200.50", "at": "2026-01-02", "id": str(uuid.UUID(int=5))}
    assert verify(case_id="C-3").ok


def test_actor_kinds_are_recorded(alice):
    by_user = record(actor=alice, action=AuditAction.CASE_SUBMITTED)
    by_client = record(actor=Actor.api_client(3, "erp"), action=AuditAction.CASE_SUBMITTED)
    by_worker = record(
        actor=Actor.system("worker:invoice.extract"), action=AuditAction.STEP_SUCCEEDED
    )
    assert (by_user.actor_kind, by_user.actor_id, by_user.actor_name) == (
        "user",
        str(alice.pk),
        "alice",
    )
    assert (by_client.actor_kind, by_client.actor_name) == ("api_client", "erp")
    assert (by_worker.actor_kind, by_worker.actor_name) == ("system", "worker:invoice.extract")


def test_the_context_supplies_request_trace_and_correlation_ids(alice):
    with audit_context(
        request_id="req-1", trace_id="a" * 32, client_ip="10.0.0.9", correlation_id="corr-1"
    ):
        event = record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="C-4")
    assert (event.request_id, event.trace_id, event.client_ip, event.correlation_id) == (
        "req-1",
        "a" * 32,
        "10.0.0.9",
        "corr-1",
    )


def test_an_unknown_action_is_refused(alice):
    before = AuditEvent.objects.count()
    with pytest.raises(AuditError, match=r"unknown audit action 'case\.teleported'"):
        record(actor=alice, action="case.teleported")
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_recording_outside_a_transaction_is_refused(alice):
    with pytest.raises(AuditError, match="inside the transaction"):
        record(actor=alice, action=AuditAction.CASE_SUBMITTED)
    assert not AuditEvent.objects.filter(action=AuditAction.CASE_SUBMITTED).exists()


@pytest.mark.django_db(transaction=True)
def test_an_event_rolls_back_with_the_change_it_records(alice):
    with pytest.raises(RuntimeError), transaction.atomic():
        record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="C-5")
        raise RuntimeError("the change failed")
    assert not AuditEvent.objects.filter(case_id="C-5").exists()


def test_the_model_refuses_updates_and_deletes(alice):
    event = record(actor=alice, action=AuditAction.CASE_SUBMITTED)
    event.reason = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(reason="rewritten")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()


def test_recording_is_one_insert_after_the_chain_head_read(alice, django_assert_num_queries):
    audit_services._HEAD_HINTS.clear()  # what another process, which wrote nothing here, knows
    record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="C-6")
    audit_services._HEAD_HINTS.clear()
    # PostgreSQL takes the advisory lock in the head read's round trip; SQLite
    # serializes writers itself.
    with django_assert_num_queries(2) as captured:
        event = record(
            actor=Actor.system("worker:x"), action=AuditAction.STEP_STARTED, case_id="C-6"
        )
    inserts = [q for q in captured.captured_queries if "INSERT" in q["sql"]]
    assert len(inserts) == 1
    if connection.vendor == "postgresql":
        assert "pg_advisory_xact_lock" in captured.captured_queries[0]["sql"]
    assert event.chain_seq == 2
    assert verify(case_id="C-6").ok


@pytest.mark.postgres
def test_the_next_event_of_a_chain_this_process_wrote_is_one_round_trip(
    alice, django_assert_num_queries
):
    record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="C-7")
    with django_assert_num_queries(1) as captured:
        second = record(actor=alice, action=AuditAction.STEP_STARTED, case_id="C-7")
    assert "pg_advisory_xact_lock" in captured.captured_queries[0]["sql"]
    assert second.chain_seq == 2
    assert AuditEvent.objects.get(pk=second.pk).hash == second.hash
    assert verify(case_id="C-7").ok


@pytest.mark.postgres
def test_a_new_case_chain_starts_in_one_round_trip(alice, django_assert_num_queries):
    audit_services.chain_started("C-8")
    with django_assert_num_queries(1):
        first = record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="C-8")
    assert (first.chain_seq, first.prev_hash) == (1, GENESIS_HASH)
    assert verify(case_id="C-8").ok


def test_a_head_rolled_back_with_its_savepoint_is_not_chained_to(alice):
    record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="C-9")
    with pytest.raises(RuntimeError), transaction.atomic():
        gone = record(actor=alice, action=AuditAction.STEP_STARTED, case_id="C-9")
        raise RuntimeError("the change failed")
    kept = record(actor=alice, action=AuditAction.STEP_FAILED, case_id="C-9")
    assert kept.chain_seq == gone.chain_seq
    assert kept.prev_hash != gone.hash
    assert list(
        AuditEvent.objects.filter(case_id="C-9").order_by("chain_seq").values_list("action")
    ) == [(AuditAction.CASE_SUBMITTED,), (AuditAction.STEP_FAILED,)]
    assert verify(case_id="C-9").ok


def test_a_stale_head_hint_costs_the_slow_path_and_never_breaks_the_chain(alice):
    for action in (AuditAction.CASE_SUBMITTED, AuditAction.STEP_STARTED):
        record(actor=alice, action=action, case_id="C-10")
    # As if another process had appended since this one last wrote, or a hint said
    # "new chain" for a chain that has events.
    audit_services.chain_started("C-10")
    third = record(actor=alice, action=AuditAction.STEP_SUCCEEDED, case_id="C-10")
    assert third.chain_seq == 3
    audit_services._hint_set("case:C-10", 2, "f" * 64)
    fourth = record(actor=alice, action=AuditAction.CASE_COMPLETED, case_id="C-10")
    assert (fourth.chain_seq, fourth.prev_hash) == (4, third.hash)
    assert AuditEvent.objects.filter(case_id="C-10").count() == 4
    assert verify(case_id="C-10").ok


@pytest.mark.postgres
def test_a_head_read_by_another_statement_lets_the_next_event_go_in_at_once(
    alice, django_assert_num_queries
):
    """`case_chain_head_sql` reads a case's head inside a statement that touches the
    case anyway; `chain_head_seen` hands it over, and a stale one costs the slow path."""
    case = uuid.uuid4()
    for action in (AuditAction.CASE_SUBMITTED, AuditAction.STEP_STARTED):
        record(actor=alice, action=action, case_id=case)
    audit_services._HEAD_HINTS.clear()
    with connection.cursor() as cursor:
        # As a claim's UPDATE of a work item reads its case's head.
        cursor.execute(
            f"SELECT {audit_services.case_chain_head_sql('item.case_id')} "  # noqa: S608
            "FROM (VALUES (%s::uuid)) AS item (case_id)",
            [case],
        )
        seq, head = cursor.fetchone()
    second = AuditEvent.objects.get(case_id=str(case), chain_seq=2)
    assert (seq, head) == (2, second.hash)
    audit_services.chain_head_seen(case, seq, head)
    with django_assert_num_queries(1):
        third = record(actor=alice, action=AuditAction.STEP_SUCCEEDED, case_id=case)
    assert (third.chain_seq, third.prev_hash) == (3, second.hash)
    audit_services.chain_head_seen(case, seq, head)  # stale now: the head is 3
    with django_assert_num_queries(3):  # the failed guess, then the lock, head and INSERT
        fourth = record(actor=alice, action=AuditAction.CASE_COMPLETED, case_id=case)
    assert (fourth.chain_seq, fourth.prev_hash) == (4, third.hash)
    audit_services.chain_head_seen("C-empty", None, None)  # a chain with no events yet
    with django_assert_num_queries(1):
        first = record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="C-empty")
    assert (first.chain_seq, first.prev_hash) == (1, GENESIS_HASH)
    assert verify(case_id=str(case)).ok and verify(case_id="C-empty").ok


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_to_one_chain_serialize_on_postgresql():
    errors: list[BaseException] = []

    def append(n: int) -> None:
        try:
            for i in range(10):
                with transaction.atomic():
                    record(
                        actor=Actor.system(f"worker:{n}"),
                        action=AuditAction.STEP_STARTED,
                        case_id="C-race",
                        after={"i": i},
                    )
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=append, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    seqs = list(
        AuditEvent.objects.filter(case_id="C-race")
        .order_by("chain_seq")
        .values_list("chain_seq", flat=True)
    )
    assert seqs == list(range(1, 81))
    assert verify(case_id="C-race").ok


def test_many_events_are_chained_in_the_order_given_across_chains(alice):
    record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="C-11")
    events = audit_services.record_many(
        [
            {"actor": alice, "action": AuditAction.SLA_BREACHED, "case_id": "C-11"},
            {"actor": alice, "action": AuditAction.SLA_BREACHED, "case_id": "C-12"},
            {"actor": alice, "action": AuditAction.ITEM_ESCALATED, "case_id": "C-11"},
            {"actor": alice, "action": AuditAction.POLICY_CHANGED, "after": {"x": 1}},
        ]
    )
    assert [(e.chain, e.chain_seq) for e in events] == [
        ("case:C-11", 2),
        ("case:C-12", 1),
        ("case:C-11", 3),
        ("global", events[3].chain_seq),
    ]
    assert events[2].prev_hash == events[0].hash
    assert all(e.pk for e in events)
    for case in ("C-11", "C-12"):
        assert verify(case_id=case).ok
    # What record writes next follows on.
    after = record(actor=alice, action=AuditAction.CASE_COMPLETED, case_id="C-11")
    assert (after.chain_seq, after.prev_hash) == (4, events[2].hash)
    assert verify().ok


def test_many_events_refuse_an_unknown_action_and_write_nothing(alice):
    before = AuditEvent.objects.count()
    with pytest.raises(AuditError, match=r"case\.teleported"):
        audit_services.record_many(
            [
                {"actor": alice, "action": AuditAction.SLA_BREACHED, "case_id": "C-13"},
                {"actor": alice, "action": "case.teleported", "case_id": "C-13"},
            ]
        )
    assert AuditEvent.objects.count() == before


# Events recorded together (audit.services.batch) ----------------------------------------


def _chain_of(case_id):
    return list(
        AuditEvent.objects.filter(case_id=case_id)
        .order_by("chain_seq")
        .values_list("chain_seq", "action")
    )


def test_a_batch_writes_its_events_when_it_ends_chained_in_the_order_recorded(alice):
    record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="C-20")
    with audit_services.batch():
        first = record(actor=alice, action=AuditAction.STEP_STARTED, case_id="C-20")
        other = record(actor=alice, action=AuditAction.SLA_BREACHED, case_id="C-21")
        second = record(actor=alice, action=AuditAction.STEP_SUCCEEDED, case_id="C-20")
        assert first.pk is None  # written when the batch ends
        assert AuditEvent.objects.filter(case_id__in=["C-20", "C-21"]).count() == 1
    assert _chain_of("C-20") == [
        (1, AuditAction.CASE_SUBMITTED),
        (2, AuditAction.STEP_STARTED),
        (3, AuditAction.STEP_SUCCEEDED),
    ]
    assert (other.chain_seq, other.prev_hash) == (1, GENESIS_HASH)
    assert second.prev_hash == first.hash
    assert all(AuditEvent.objects.get(pk=e.pk).hash == e.hash for e in (first, other, second))
    assert verify(case_id="C-20").ok
    assert verify(case_id="C-21").ok
    # What record writes next follows on.
    after = record(actor=alice, action=AuditAction.CASE_COMPLETED, case_id="C-20")
    assert (after.chain_seq, after.prev_hash) == (4, second.hash)


@pytest.mark.postgres
def test_a_new_case_chain_s_batch_is_one_round_trip(alice, django_assert_num_queries):
    audit_services.chain_started("C-22")
    with django_assert_num_queries(1) as captured, audit_services.batch():
        for action in (AuditAction.CASE_SUBMITTED, AuditAction.STEP_STARTED):
            record(actor=alice, action=action, case_id="C-22", before=None, after={"a": 1})
        record(actor=alice, action=AuditAction.ITEM_ENQUEUED, case_id="C-22")
    assert "pg_advisory_xact_lock" in captured.captured_queries[0]["sql"]
    assert [seq for seq, _ in _chain_of("C-22")] == [1, 2, 3]
    assert verify(case_id="C-22").ok


def test_a_batch_with_a_stale_head_hint_takes_the_slow_path_and_keeps_the_chain(alice):
    for action in (AuditAction.CASE_SUBMITTED, AuditAction.STEP_STARTED):
        record(actor=alice, action=action, case_id="C-23")
    audit_services.chain_started("C-23")  # wrong: the chain has two events
    with audit_services.batch():
        third = record(actor=alice, action=AuditAction.STEP_SUCCEEDED, case_id="C-23")
        fourth = record(actor=alice, action=AuditAction.CASE_COMPLETED, case_id="C-23")
    assert (third.chain_seq, fourth.chain_seq, fourth.prev_hash) == (3, 4, third.hash)
    assert [seq for seq, _ in _chain_of("C-23")] == [1, 2, 3, 4]
    assert verify(case_id="C-23").ok


def test_a_batch_that_raises_writes_nothing(alice):
    before = AuditEvent.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic(), audit_services.batch():
        record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="C-24")
        raise RuntimeError("the change failed")
    assert AuditEvent.objects.count() == before
    # The next batch starts clean.
    with audit_services.batch():
        record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="C-24")
    assert _chain_of("C-24") == [(1, AuditAction.CASE_SUBMITTED)]


def test_an_event_in_a_nested_atomic_block_is_written_at_once_and_rolls_back_with_it(alice):
    with audit_services.batch():
        deferred = record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="C-25")
        with pytest.raises(RuntimeError), transaction.atomic():
            record(actor=alice, action=AuditAction.STEP_STARTED, case_id="C-25")
            raise RuntimeError("the nested change failed")
        with transaction.atomic():
            kept = record(actor=alice, action=AuditAction.STEP_FAILED, case_id="C-25")
            assert kept.pk is not None  # not deferred
        assert deferred.pk is None
    # The nested block's event comes first in the chain; the rolled-back one is gone.
    assert _chain_of("C-25") == [(1, AuditAction.STEP_FAILED), (2, AuditAction.CASE_SUBMITTED)]
    assert verify(case_id="C-25").ok


def test_many_events_recorded_in_a_batch_wait_for_it_too(alice):
    with audit_services.batch():
        record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="C-26")
        audit_services.record_many(
            [{"actor": alice, "action": AuditAction.SLA_BREACHED, "case_id": "C-26"}]
        )
        record(actor=alice, action=AuditAction.ITEM_ESCALATED, case_id="C-26")
        assert not AuditEvent.objects.filter(case_id="C-26").exists()
    assert _chain_of("C-26") == [
        (1, AuditAction.CASE_SUBMITTED),
        (2, AuditAction.SLA_BREACHED),
        (3, AuditAction.ITEM_ESCALATED),
    ]
    assert verify(case_id="C-26").ok


@pytest.mark.django_db(transaction=True)
def test_a_batch_outside_a_transaction_is_refused():
    with pytest.raises(AuditError, match="inside the transaction"), audit_services.batch():
        pass
