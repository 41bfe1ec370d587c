"""The dashboard over a million work items next to its own SQL run raw (baseline (c)),
and one SLA sweep over open items of which 1 % are newly breached."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import psycopg

from bench.common import REPEATS, BenchError, Line, median, progress
from bench.world import Context, execute, reset_work, scalar, seed, vacuum

GOAL_DASHBOARD_FACTOR = 3.0
# The issue sets the dashboard's goals at a million items. Below that the page's fixed
# cost (middleware, template, charts: about 13 ms of Python) weighs more against SQL
# that shrinks with the table, so the ratio is harder to meet there, not easier.
ISSUE_DASHBOARD_ITEMS = 1_000_000
GOAL_DASHBOARD_MS = 50.0
GOAL_SWEEP_SECONDS = 1.0
DASHBOARD_OPEN_SHARE = 0.05
REQUESTS_PER_ROUND = 5


# --- Dashboard ---------------------------------------------------------------------


def _page(client: Any) -> float:
    started = time.perf_counter()
    response = client.get("/dashboard/")
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise BenchError(f"/dashboard/ answered {response.status_code}")
    return elapsed * 1000


def _replay(conn: psycopg.Connection[Any], queries: list[str]) -> list[float]:
    """Run the page's statements as they were sent, fetching every row; ms each."""
    times = []
    with conn.cursor() as cursor:
        for statement in queries:
            started = time.perf_counter()
            cursor.execute(statement.encode())
            if cursor.description is not None:
                cursor.fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return times


def _measure_dashboard(ctx: Context, client: Any) -> dict[str, Any]:
    """Interleaved rounds of: the raw SQL (REQUESTS_PER_ROUND times), the page (as
    often); each round's figure is the median of its repetitions."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):  # templates compiled, connection open, caches warm
        _page(client)
    with CaptureQueriesContext(connection) as captured:
        _page(client)
    queries = [q["sql"] for q in captured.captured_queries]
    rounds = []
    per_query: list[list[float]] = [[] for _ in queries]
    with psycopg.connect(ctx.bench_url, autocommit=True) as raw:
        _replay(raw, queries)
        for n in range(1, REPEATS + 1):
            raw_runs = []
            for _ in range(REQUESTS_PER_ROUND):
                times = _replay(raw, queries)
                raw_runs.append(sum(times))
                for k, spent in enumerate(times):
                    per_query[k].append(spent)
            page_runs = [_page(client) for _ in range(REQUESTS_PER_ROUND)]
            rounds.append({"raw_ms": median(raw_runs), "page_ms": median(page_runs)})
            progress(
                f"dashboard round {n}/{REPEATS}: page {rounds[-1]['page_ms']:.1f} ms, "
                f"its SQL raw {rounds[-1]['raw_ms']:.1f} ms ({len(queries)} statements)"
            )
    by_statement = [(median(t), q) for q, t in zip(queries, per_query, strict=True)]
    slowest = [
        {"ms": round(ms, 2), "sql": q[:300]}
        for ms, q in sorted(by_statement, key=lambda p: -p[0])[:5]
    ]
    return {
        "rounds": rounds,
        "page_ms": median(r["page_ms"] for r in rounds),
        "raw_ms": median(r["raw_ms"] for r in rounds),
        "ratio": median(r["page_ms"] / r["raw_ms"] for r in rounds),
        "statements": len(queries),
        "slowest_statements": slowest,
    }


def _open_items() -> int:
    return int(
        scalar(
            "SELECT count(*) FROM routing_workitem "
            "WHERE state IN ('queued', 'claimed', 'awaiting_checker')"
        )
    )


def dashboard_phase(ctx: Context) -> list[Line]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    items = ctx.sizes.dashboard_items
    progress(f"dashboard: seeding {items:,} work items, {DASHBOARD_OPEN_SHARE:.0%} open")
    reset_work()
    seed(items, open_share=DASHBOARD_OPEN_SHARE, queues=ctx.sizes.queues)
    vacuum("routing_workitem", "orchestration_case")
    client = Client()
    client.force_login(get_user_model().objects.get(pk=ctx.world.manager_id))
    opened = _open_items()
    first = _measure_dashboard(ctx, client)
    lines = [
        Line(
            f"Dashboard: /dashboard/ at {items:,} items",
            first["page_ms"],
            "ms",
            f"<= {GOAL_DASHBOARD_FACTOR:.0f} x (c)",
            first["ratio"] <= GOAL_DASHBOARD_FACTOR,
            baseline=first["raw_ms"],
            baseline_name="(c) raw SQL",
            ratio=first["ratio"],
            detail=f"{opened:,} open, {first['statements']} statements"
            + (
                ""
                if items >= ISSUE_DASHBOARD_ITEMS
                else f"; quick run: the goal is set at {ISSUE_DASHBOARD_ITEMS:,} items"
            ),
            runs=first,
        ),
        Line(
            "Dashboard: server time",
            first["page_ms"],
            "ms",
            f"< {GOAL_DASHBOARD_MS:.0f} ms",
            first["page_ms"] < GOAL_DASHBOARD_MS,
            detail="in-process, whole middleware stack",
        ),
    ]
    if ctx.sizes.scale_5m:
        more = items * 4
        progress(f"dashboard: seeding {more:,} more work items for the 5x line")
        seed(more, open_share=DASHBOARD_OPEN_SHARE, queues=ctx.sizes.queues)
        vacuum("routing_workitem", "orchestration_case")
        opened_5 = _open_items()
        fifth = _measure_dashboard(ctx, client)
        growth = fifth["page_ms"] / first["page_ms"]
        backlog_growth = opened_5 / opened
        lines += [
            Line(
                f"Dashboard: growth {items:,} -> {items * 5:,} items",
                growth,
                "x",
                "<= open backlog growth",
                growth <= backlog_growth,
                baseline=backlog_growth,
                baseline_name="open backlog",
                detail=f"{fifth['page_ms']:.0f} ms at {opened_5:,} open; raw "
                f"{fifth['raw_ms']:.0f} ms",
                runs=fifth,
            ),
        ]
    return lines


# --- SLA sweep ---------------------------------------------------------------------

# Every open item due tomorrow, except every hundredth (by id), whose escalation time
# passed a minute ago (warned two hours ago, not breached yet): "newly breached".
SWEEP_SETUP = [
    """
    UPDATE routing_workitem
       SET due_at = now() + interval '1 day', warn_at = now() + interval '20 hours',
           warned_at = NULL, breached_at = NULL, escalate_at = now() + interval '1 day',
           escalation_level = 0, flag = '', updated_at = %(t0)s
     WHERE state IN ('queued', 'claimed', 'awaiting_checker')
    """,
    """
    UPDATE routing_workitem
       SET due_at = now() - interval '1 minute', warn_at = now() - interval '2 hours',
           warned_at = now() - interval '2 hours', escalate_at = now() - interval '1 minute',
           updated_at = %(t0)s
     WHERE id IN (SELECT id FROM (
               SELECT id, row_number() OVER (ORDER BY id) AS n
                 FROM routing_workitem
                WHERE state IN ('queued', 'claimed', 'awaiting_checker')) numbered
            WHERE n %% 100 = 0)
    """,
]


def _prepare_sweep(t0: dt.datetime) -> tuple[int, str]:
    """(rows now due, the transaction id that wrote every row)."""
    from django.db import transaction

    with transaction.atomic():
        execute(SWEEP_SETUP[0], {"t0": t0})
        due = execute(SWEEP_SETUP[1], {"t0": t0})
        writer = str(scalar("SELECT xmin::text FROM routing_workitem LIMIT 1"))
    vacuum("routing_workitem")
    return due, writer


def sla_phase(ctx: Context) -> list[Line]:
    from django.utils import timezone

    from routing.services import sla_sweep

    items = ctx.sizes.sla_items
    progress(f"sla sweep: seeding {items:,} open work items")
    reset_work()
    seed(items, open_share=1.0, queues=ctx.sizes.queues)
    runs: list[dict[str, Any]] = []
    for n in range(1, REPEATS + 1):
        t0 = timezone.now().replace(microsecond=0) - dt.timedelta(days=1)
        due, writer = _prepare_sweep(t0)
        started = time.perf_counter()
        counts = sla_sweep()
        seconds = time.perf_counter() - started
        stamped = int(scalar("SELECT count(*) FROM routing_workitem WHERE updated_at <> %s", [t0]))
        # xmin: the transaction that wrote the row's current version; a row the sweep
        # rewrote without touching updated_at shows here too.
        rewritten = int(
            scalar("SELECT count(*) FROM routing_workitem WHERE xmin::text <> %s", [writer])
        )
        runs.append(
            {
                "seconds": seconds,
                "due": due,
                "updated_at_changed": stamped,
                "rows_rewritten": rewritten,
                "counts": counts,
            }
        )
        progress(
            f"sla sweep round {n}/{REPEATS}: {seconds:.3f} s, {due} due, {stamped} rows "
            f"stamped, {rewritten} rewritten, {counts}"
        )
    seconds = median(r["seconds"] for r in runs)
    due = runs[0]["due"]
    touched = max(max(r["updated_at_changed"], r["rows_rewritten"]) for r in runs)
    escalated = min(r["counts"]["escalated"] for r in runs)
    return [
        Line(
            f"SLA sweep: one pass, {items:,} open, 1 % due",
            seconds,
            "s",
            f"< {GOAL_SWEEP_SECONDS:.0f} s",
            seconds < GOAL_SWEEP_SECONDS and escalated == due,
            detail=f"{escalated:,} of {due:,} escalated",
            runs={"rounds": runs},
        ),
        Line(
            "SLA sweep: rows touched",
            touched,
            "rows",
            "= breached rows",
            touched == due,
            baseline=due,
            baseline_name="breached",
            detail="updated_at changed and xmin changed",
        ),
    ]
