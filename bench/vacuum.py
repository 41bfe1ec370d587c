"""The hot tables' autovacuum settings (config/autovacuum.py) against the server's
defaults, on a server where autovacuum runs: not part of `make bench`, whose server
(CI's) runs with autovacuum off and whose phases VACUUM between them.

    DATABASE_URL=postgres://postgres@127.0.0.1:5433/vacuum \\
        python -m bench.vacuum --seed 1000000          # once: migrate and fill
    DATABASE_URL=... python -m bench.vacuum --mode defaults
    DATABASE_URL=... python -m bench.vacuum --mode hot

Each run puts routing_workitem back to the state it had after seeding (rows the last
run added deleted, rows it changed restored), sets or resets the table's autovacuum
options, rewrites and vacuums it, and resets its statistics counters; then pgbench
churns it at a fixed rate for the given time: claim the next waiting item, complete
it, enqueue a new one like it (`CHURN_SCRIPT`), as reviewers and intake do.
Every 30 s it samples the table's live and dead rows, autovacuum and autoanalyze
counts and sizes, and before and after the churn it times the dashboard's statements
on work items (captured from the page, run raw, median of 7) with their heap fetches:
the index-only scans the dashboard relies on visit the table for every row on a page
the visibility map does not vouch for. One JSON document goes to standard output.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from bench.claims import FEED
from bench.common import PGBENCH, UsageError, pg_client
from config.autovacuum import HOT_TABLE_V1, reset_statements, set_statements

# One turn: claim the next waiting item for :rid, complete it, and enqueue a new one
# like it with the churn's own FEED (three transactions, as reviewers and intake do).
_CLAIM_AND_COMPLETE = """
BEGIN;
UPDATE routing_workitem
   SET state = 'claimed', assignee_id = :rid, claimed_at = now(), last_activity_at = now(),
       updated_at = now()
 WHERE id = (SELECT id FROM routing_workitem WHERE state IN ('queued', 'awaiting_checker')
              ORDER BY rank_at, id FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING id AS claimed \\gset
COMMIT;
UPDATE routing_workitem
   SET state = 'done', decided_at = now(), last_activity_at = now(), updated_at = now()
 WHERE id = :claimed;
"""
_FEED_ONE = FEED.strip().replace("%s::bigint[]", "ARRAY[:claimed]::bigint[]")
CHURN_SCRIPT = f"{_CLAIM_AND_COMPLETE}{_FEED_ONE};\n"
MANAGER = "bench-vacuum-manager"
SNAPSHOT = [
    "CREATE TABLE bench_vacuum_start AS SELECT max(id) AS max_id FROM routing_workitem",
    """CREATE TABLE bench_vacuum_open AS
        SELECT id, state, assignee_id, claimed_at, last_activity_at, decided_at, updated_at
          FROM routing_workitem WHERE state IN ('queued', 'claimed', 'awaiting_checker')""",
]
RESTORE = [
    "DELETE FROM routing_workitem WHERE id > (SELECT max_id FROM bench_vacuum_start)",
    """UPDATE routing_workitem w
          SET state = s.state, assignee_id = s.assignee_id, claimed_at = s.claimed_at,
              last_activity_at = s.last_activity_at, decided_at = s.decided_at,
              updated_at = s.updated_at
         FROM bench_vacuum_open s
        WHERE w.id = s.id
          AND (w.state, w.claimed_at, w.decided_at)
              IS DISTINCT FROM (s.state, s.claimed_at, s.decided_at)""",
]
SAMPLE = """
SELECT n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count,
       pg_relation_size('routing_workitem'), pg_indexes_size('routing_workitem')
  FROM pg_stat_user_tables WHERE relname = 'routing_workitem'
"""


def _django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()


def _seed(url: str, items: int) -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('bench_vacuum_start')").fetchone() != (None,):
            raise UsageError("this database is seeded already: run --mode, or use a new one")
    call_command("bench_seed", items=items, open=0.05, queues=10, batch=100_000)
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in SNAPSHOT:  # what each run restores, and the mark of a scratch db
            conn.execute(statement)


def _manager_id() -> int:
    from accounts.roles import Role
    from accounts.services import user_ensure

    nobody_signs_in = secrets.token_urlsafe(24)
    user, _ = user_ensure(username=MANAGER, password=nobody_signs_in, roles=[Role.MANAGER])
    return int(user.pk)


def _dashboard_statements() -> list[str]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(get_user_model().objects.get(username=MANAGER))
    with CaptureQueriesContext(connection) as captured:
        if client.get("/dashboard/", HTTP_HOST="localhost").status_code != 200:
            raise UsageError("/dashboard/ did not answer 200")
    return [q["sql"] for q in captured.captured_queries if "routing_workitem" in q["sql"]]


def _time_statements(conn: psycopg.Connection[Any], statements: list[str]) -> list[dict]:
    out = []
    for statement in statements:
        plan = "\n".join(
            row[0] for row in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}").fetchall()
        )
        times = []
        for _ in range(7):
            started = time.perf_counter()
            conn.execute(statement).fetchall()
            times.append((time.perf_counter() - started) * 1000)
        out.append(
            {
                "ms": round(statistics.median(times), 1),
                "heap_fetches": sum(int(n) for n in re.findall(r"Heap Fetches: (\d+)", plan)),
                "sql": statement[:80],
            }
        )
    return out


def _prepare(conn: psycopg.Connection[Any], mode: str) -> None:
    if conn.execute("SELECT to_regclass('bench_vacuum_start')").fetchone() == (None,):
        raise UsageError(
            "this database was not filled by `python -m bench.vacuum --seed N`, and a run "
            "deletes and rewrites work items: point DATABASE_URL at a scratch database "
            "and seed it first"
        )
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_visibility")
    for statement in RESTORE:
        conn.execute(statement)
    build = set_statements if mode == "hot" else reset_statements
    for statement in build({"routing_workitem": HOT_TABLE_V1}):
        conn.execute(statement)
    conn.execute("VACUUM (FULL) routing_workitem")
    conn.execute("VACUUM (ANALYZE) routing_workitem")  # the visibility map, set
    conn.execute("SELECT pg_stat_reset_single_table_counters('routing_workitem'::regclass)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.vacuum", description=__doc__)
    parser.add_argument("--seed", type=int, help="migrate and fill with this many work items")
    parser.add_argument("--mode", choices=["defaults", "hot"])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--rate", type=int, default=150, help="churn turns a second")
    args = parser.parse_args(argv)
    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise UsageError(
            "set DATABASE_URL to a scratch PostgreSQL database on a server with autovacuum "
            "on, e.g. postgres://postgres@127.0.0.1:5433/vacuum"
        )
    _django(url)
    if args.seed:
        _seed(url, args.seed)
        return 0
    if not args.mode:
        parser.error("give --mode defaults or --mode hot (or --seed N first)")
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SHOW autovacuum").fetchone() != ("on",):
            raise UsageError("autovacuum is off on this server: nothing to compare")
        manager = _manager_id()
        _prepare(conn, args.mode)
        statements = _dashboard_statements()
        before = _time_statements(conn, statements)
        samples: list[list[int]] = []
        stop = threading.Event()

        def sample() -> None:
            with psycopg.connect(url, autocommit=True) as own:
                started = time.monotonic()
                stopped = False
                while True:  # every 30 s, and once more when the churn ends
                    row = own.execute(SAMPLE).fetchone() or ()
                    samples.append([round(time.monotonic() - started), *map(int, row)])
                    if stopped:
                        return
                    stopped = stop.wait(30)

        sampler = threading.Thread(target=sample)
        sampler.start()
        conn_args, env = pg_client(parts, parts.path.lstrip("/"))
        try:
            with tempfile.TemporaryDirectory(prefix="bench-vacuum-") as tmp:
                script = Path(tmp) / "churn.sql"
                script.write_text(CHURN_SCRIPT)
                done = subprocess.run(  # noqa: S603 (our own command line)
                    [
                        PGBENCH, "-n", "-f", str(script), "-D", f"rid={manager}", "-c", "8",
                        "-j", "2", "-T", str(args.seconds), "-R", str(args.rate), "-P", "60",
                        "-r", *conn_args,
                    ],
                    env=env, capture_output=True, text=True, check=False,
                )  # fmt: skip
        finally:
            stop.set()
            sampler.join()
        if done.returncode != 0:
            raise UsageError(f"pgbench failed ({done.returncode}): {done.stderr.strip()}")
        after = _time_statements(conn, statements)
        visible = conn.execute(
            "SELECT all_visible FROM pg_visibility_map_summary('routing_workitem')"
        ).fetchone()
    latency = re.search(r"latency average = ([0-9.]+) ms", done.stdout)
    json.dump(
        {
            "mode": args.mode,
            "seconds": args.seconds,
            "rate": args.rate,
            "latency_avg_ms": float(latency.group(1)) if latency else None,
            "progress": [line for line in done.stderr.splitlines() if line.startswith("progress")],
            "samples": ["s live dead autovacuums autoanalyzes heap_bytes index_bytes", *samples],
            "dead_rows_peak": max((s[2] for s in samples), default=0),
            "all_visible_pages_after": visible[0] if visible else None,
            "dashboard_before": before,
            "dashboard_after": after,
        },
        sys.stdout,
        indent=1,
    )
    print()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UsageError as exc:
        print(f"bench.vacuum: {exc}", file=sys.stderr)
        sys.exit(2)
