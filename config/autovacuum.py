"""Per-table autovacuum settings for the tables every case rewrites (PostgreSQL).

PostgreSQL's defaults vacuum a table once a fifth of its rows are dead and analyze it
once a tenth have changed. Work items, cases, step runs, outbox events and
idempotency keys grow to millions of rows while only the newest few thousand change,
so with the defaults a table of a million work items carries 200,000 dead row
versions before its first vacuum. Until then the claim's and the SLA sweep's partial
indexes keep entries for rows that left them, the dashboard's index-only scans visit
the heap for every page the visibility map no longer vouches for, and the planner
plans with statistics up to a tenth out of date.

Migrations set these options on their app's tables with `autovacuum_operation` and a
versioned set of values (`HOT_TABLE_V1`). A version is never edited: a change is a new
version and a new migration, so old and new databases cannot silently differ. The hot
tables are vacuumed once 2 % of their rows (plus 1,000) are dead, where the default is
20 % (plus 50); analyzed once 2 % (plus 1,000) changed, where it is 10 %; and vacuumed
after 5 % new rows, where it is 20 %, so that the visibility map keeps up with intake.
Other databases have nothing to set; on PostgreSQL the server's own `autovacuum`
switch still decides whether any of it runs (docs/scaling.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from django.db import migrations

# The hot tables' options since routing 0009 and orchestration 0006. Never edit in
# place (see above).
HOT_TABLE_V1: Mapping[str, float | int] = MappingProxyType(
    {
        "autovacuum_vacuum_scale_factor": 0.02,
        "autovacuum_vacuum_threshold": 1000,
        "autovacuum_vacuum_insert_scale_factor": 0.05,
        "autovacuum_analyze_scale_factor": 0.02,
        "autovacuum_analyze_threshold": 1000,
    }
)

_OPTION = re.compile(r"^autovacuum_[a-z_]+$")
_TABLE = re.compile(r"^[a-z_][a-z0-9_]*$")


def _checked(tables: Mapping[str, Mapping[str, float | int]]) -> None:
    for table, options in tables.items():
        if not _TABLE.match(table):
            raise ValueError(f"not a plain table name: {table!r}")
        for name, value in options.items():
            if not _OPTION.match(name):
                raise ValueError(f"not an autovacuum storage parameter: {name!r}")
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number of at least 0, not {value!r}")


def set_statements(tables: Mapping[str, Mapping[str, float | int]]) -> list[str]:
    _checked(tables)
    return [
        f"ALTER TABLE {table} SET ("
        + ", ".join(f"{name} = {value}" for name, value in options.items())
        + ")"
        for table, options in tables.items()
    ]


def reset_statements(tables: Mapping[str, Mapping[str, float | int]]) -> list[str]:
    _checked(tables)
    return [
        f"ALTER TABLE {table} RESET (" + ", ".join(options) + ")"
        for table, options in tables.items()
    ]


def autovacuum_operation(tables: Mapping[str, Mapping[str, float | int]]) -> Any:
    """A migration operation setting these storage parameters on PostgreSQL (and
    resetting them when unapplied); nothing on other databases."""
    forward_sql = set_statements(tables)
    backward_sql = reset_statements(tables)

    def run(statements: list[str]) -> Any:
        def apply(apps: Any, schema_editor: Any) -> None:
            if schema_editor.connection.vendor != "postgresql":
                return
            for statement in statements:
                schema_editor.execute(statement, params=None)

        return apply

    return migrations.RunPython(run(forward_sql), run(backward_sql))
