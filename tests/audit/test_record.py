import threading

import pytest
from django.db import connection, transaction

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
    import uuid

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
    record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="C-6")
    # PostgreSQL adds the advisory lock; SQLite serializes writers itself.
    expected = 3 if connection.vendor == "postgresql" else 2
    with django_assert_num_queries(expected) as captured:
        record(actor=Actor.system("worker:x"), action=AuditAction.STEP_STARTED, case_id="C-6")
    inserts = [q for q in captured.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1


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
