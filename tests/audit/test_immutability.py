"""The database itself refuses to change or remove audit rows, on PostgreSQL and SQLite."""

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AuditAction
from audit.services import checkpoint_create, record

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(alice):
    return record(actor=alice, action=AuditAction.CASE_SUBMITTED, case_id="C-1")


def _raw(sql: str, params: list[int] | None = None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_raw_sql_update_is_refused(event):
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("UPDATE audit_auditevent SET reason = 'rewritten' WHERE id = %s", [event.pk])


def test_raw_sql_delete_is_refused(event):
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])


def test_checkpoints_are_append_only_too(event):
    checkpoint = checkpoint_create()
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("UPDATE audit_auditcheckpoint SET chain_count = 0 WHERE id = %s", [checkpoint.pk])
    with pytest.raises(DatabaseError, match="append-only"):
        _raw("DELETE FROM audit_auditcheckpoint")


@pytest.mark.postgres
def test_truncate_is_refused_on_postgresql(event):
    with pytest.raises(DatabaseError, match="TRUNCATE"):
        _raw("TRUNCATE audit_auditevent")


@pytest.mark.sqlite
def test_the_sqlite_triggers_exist():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s",
            ["audit_auditevent"],
        )
        names = {row[0] for row in cursor.fetchall()}
    assert names == {"audit_auditevent_no_update", "audit_auditevent_no_delete"}
