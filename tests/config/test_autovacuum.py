"""config.autovacuum: the hot tables' autovacuum settings, set by the migrations on
PostgreSQL, reset when unapplied, and nothing on other databases."""

from types import SimpleNamespace

import pytest
from django.db import connection

from config.autovacuum import (
    autovacuum_operation,
    reset_statements,
    set_statements,
)

HOT_TABLES = [
    "routing_workitem",
    "orchestration_case",
    "orchestration_steprun",
    "orchestration_outboxevent",
    "orchestration_idempotencyrecord",
]
EXPECTED = {
    "autovacuum_vacuum_scale_factor": "0.02",
    "autovacuum_vacuum_threshold": "1000",
    "autovacuum_vacuum_insert_scale_factor": "0.05",
    "autovacuum_analyze_scale_factor": "0.02",
    "autovacuum_analyze_threshold": "1000",
}


def table_options(connection, table):
    """The storage parameters set on a table (PostgreSQL's pg_class.reloptions)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(reloptions, '{}') FROM pg_class WHERE oid = to_regclass(%s)",
            [table],
        )
        row = cursor.fetchone()
    return dict(option.split("=", 1) for option in row[0]) if row else {}


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("table", HOT_TABLES)
def test_the_migrations_leave_each_hot_table_with_its_autovacuum_settings(table):
    assert table_options(connection, table) == EXPECTED


@pytest.mark.postgres
@pytest.mark.django_db
def test_unapplying_the_migration_gives_the_table_back_its_server_defaults():
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("routing", "0008_median_per_queue_index")])
    assert table_options(connection, "routing_workitem") == {}
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes("routing"))
    assert table_options(connection, "routing_workitem") == EXPECTED


@pytest.mark.postgres
@pytest.mark.django_db
def test_tables_nobody_rewrites_keep_the_server_defaults():
    assert table_options(connection, "audit_auditevent") == {}
    assert table_options(connection, "no_such_table") == {}


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_operation_sets_and_resets_only_the_options_it_names():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE autovacuum_probe (id integer) WITH (fillfactor = 90)")
    operation = autovacuum_operation({"autovacuum_probe": {"autovacuum_vacuum_scale_factor": 0.01}})
    with connection.schema_editor() as editor:
        operation.code(None, editor)
    assert table_options(connection, "autovacuum_probe") == {
        "fillfactor": "90",
        "autovacuum_vacuum_scale_factor": "0.01",
    }
    with connection.schema_editor() as editor:
        operation.reverse_code(None, editor)
    assert table_options(connection, "autovacuum_probe") == {"fillfactor": "90"}


class _Recorder:
    """A schema editor that keeps what it is given to run."""

    def __init__(self, vendor):
        self.connection = SimpleNamespace(vendor=vendor)
        self.sent = []

    def execute(self, sql, params=None):
        self.sent.append(sql)


def test_only_postgresql_is_sent_the_statements():
    operation = autovacuum_operation({"t": {"autovacuum_vacuum_scale_factor": 0.01}})
    for vendor in ("sqlite", "mysql"):
        editor = _Recorder(vendor)
        operation.code(None, editor)
        operation.reverse_code(None, editor)
        assert editor.sent == []
    editor = _Recorder("postgresql")
    operation.code(None, editor)
    operation.reverse_code(None, editor)
    assert editor.sent == [
        "ALTER TABLE t SET (autovacuum_vacuum_scale_factor = 0.01)",
        "ALTER TABLE t RESET (autovacuum_vacuum_scale_factor)",
    ]


def test_the_statements_name_each_table_and_option():
    tables = {"routing_workitem": {"autovacuum_vacuum_threshold": 1000}}
    assert set_statements(tables) == [
        "ALTER TABLE routing_workitem SET (autovacuum_vacuum_threshold = 1000)"
    ]
    assert reset_statements(tables) == [
        "ALTER TABLE routing_workitem RESET (autovacuum_vacuum_threshold)"
    ]


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"work; DROP TABLE x": {"autovacuum_vacuum_threshold": 1}}, "not a plain table name"),
        ({"t": {"fillfactor": 90}}, "not an autovacuum storage parameter"),
        ({"t": {"autovacuum_vacuum_threshold": -1}}, "must be a number of at least 0"),
        ({"t": {"autovacuum_vacuum_threshold": "1); DROP"}}, "must be a number of at least 0"),
        ({"t": {"autovacuum_enabled": True}}, "must be a number of at least 0"),
    ],
)
def test_anything_but_plain_names_and_numbers_is_refused(tables, message):
    with pytest.raises(ValueError, match=message):
        set_statements(tables)
