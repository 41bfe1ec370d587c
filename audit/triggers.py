"""Database triggers that make the audit tables append-only, on PostgreSQL and SQLite.

Migration 0002 installs them. Tests use `triggers_disabled` to play the attacker who
has table-owner rights: with the triggers off, tampering must still be caught by
`audit_verify`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import BaseDatabaseWrapper

TABLES = ("audit_auditevent", "audit_auditcheckpoint")

_PG_FUNCTIONS = """
CREATE OR REPLACE FUNCTION arbiter_audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE OR REPLACE FUNCTION arbiter_audit_refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    has_rows boolean;
BEGIN
    -- Truncating an empty table changes nothing (test suites flush that way).
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', TG_TABLE_NAME) INTO has_rows;
    IF has_rows THEN
        RAISE EXCEPTION 'audit records are append-only: TRUNCATE on % refused', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$;
"""


def _pg_create(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION arbiter_audit_refuse_change()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION arbiter_audit_refuse_truncate()",
    ]


def _sqlite_create(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} BEGIN "
        f"SELECT RAISE(ABORT, 'audit records are append-only: UPDATE on {table} refused'); END",
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} BEGIN "
        f"SELECT RAISE(ABORT, 'audit records are append-only: DELETE on {table} refused'); END",
    ]


def _sqlite_drop(table: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {table}_no_update",
        f"DROP TRIGGER IF EXISTS {table}_no_delete",
    ]


def install_statements(vendor: str) -> list[str]:
    if vendor == "postgresql":
        return [_PG_FUNCTIONS] + [s for t in TABLES for s in _pg_create(t)]
    if vendor == "sqlite":
        return [s for t in TABLES for s in _sqlite_create(t)]
    raise ImproperlyConfigured(
        f"Arbiter runs on PostgreSQL or SQLite; the audit tables cannot be made "
        f"append-only on {vendor!r}"
    )


def remove_statements(vendor: str) -> list[str]:
    if vendor == "postgresql":
        drops = [
            f"DROP TRIGGER IF EXISTS {t}_{name} ON {t}"
            for t in TABLES
            for name in ("append_only", "no_truncate")
        ]
        return [
            *drops,
            "DROP FUNCTION IF EXISTS arbiter_audit_refuse_change()",
            "DROP FUNCTION IF EXISTS arbiter_audit_refuse_truncate()",
        ]
    if vendor == "sqlite":
        return [s for t in TABLES for s in _sqlite_drop(t)]
    raise ImproperlyConfigured(
        f"Arbiter runs on PostgreSQL or SQLite; the audit tables cannot be made "
        f"append-only on {vendor!r}"
    )


@contextlib.contextmanager
def triggers_disabled(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """Switch the append-only triggers off inside the block (needs table-owner rights)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for table in TABLES:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        else:
            for statement in remove_statements(connection.vendor):
                cursor.execute(statement)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                for table in TABLES:
                    cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            else:
                for statement in install_statements(connection.vendor):
                    cursor.execute(statement)
