"""Claiming: the real `routing.services.work_item_claim_next` at 32 concurrent reviewers
next to baseline (b), pgbench's one-statement SKIP LOCKED claim at 32 clients on a
table of the same rows; the claim floor, (b)'s statement sent by 32 Python processes
(an informing line); and queue health, the claim rate after minutes of churn.

The reviewers are OS processes, not threads. On this 2-core machine threads of one
process would take turns on the GIL, so the figure would measure the interpreter lock
instead of the service; processes each hold their own interpreter and database
connection, as 32 people behind separate web workers do, and as pgbench's 32 clients
do. 32 processes on 2 cores oversubscribe the CPU, which is the point: the baseline's
32 clients oversubscribe it too.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from bench.common import (
    REPEATS,
    BenchError,
    CpuSampler,
    Line,
    PgbenchResult,
    floor_line,
    median,
    percentile,
    progress,
    run_pgbench,
)
from bench.world import Context, execute, reset_work, scalar, seed, vacuum

GOAL_TPS_SHARE = 0.50
GOAL_P99_FACTOR = 3.0
GOAL_HEALTH_SHARE = 0.80
ISSUE_CLAIMS = 100_000

# Baseline (b): one statement claims the oldest queued row, passing locked ones by.
# bench_claim holds the same rows as routing_workitem, with the one index this query
# wants (the raw SQL at its best).
CLAIM_SCRIPT = """\\set rid random(1, {reviewers})
UPDATE bench_claim
   SET state = 'claimed', assignee_id = :rid, claimed_at = now(),
       last_activity_at = now(), updated_at = now()
 WHERE id = (SELECT id FROM bench_claim WHERE state = 'queued'
             ORDER BY rank_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id;
"""
BASELINE_TABLE = [
    "DROP TABLE IF EXISTS bench_claim",
    "CREATE TABLE bench_claim AS SELECT * FROM routing_workitem",
    "ALTER TABLE bench_claim ADD PRIMARY KEY (id)",
    "CREATE INDEX bench_claim_next ON bench_claim (rank_at, id) WHERE state = 'queued'",
]
# The claim floor: baseline (b)'s statement sent by Python processes (psycopg, no
# Django), one per reviewer, as the service's reviewers are: what any Python client
# reaches on this machine, before any of the service's own work.
RAW_CLAIM = CLAIM_SCRIPT.split("\n", 1)[1].replace(":rid", "%s")
REQUEUE = """
UPDATE {table} SET state = 'queued', assignee_id = NULL, claimed_at = NULL,
       last_activity_at = NULL, decided_at = NULL
 WHERE state <> 'queued'
"""
# Churn's new work: copies of seeded items (same cases, queues, classes), queued now.
FEED = """
INSERT INTO routing_workitem (case_id, step_run_id, kind, queue_id, priority, region, skills,
    state, assignee_id, enqueued_at, rank_at, claimed_at, last_activity_at, decided_at, due_at,
    warn_at, warned_at, breached_at, escalate_at, snoozed_until, snooze_reason, maker_id,
    excluded_reviewers, flag, reassignment_count, escalation_level, updated_at)
SELECT w.case_id, w.step_run_id, w.kind, w.queue_id, w.priority, w.region, w.skills,
       'queued', NULL, now(), now() + (w.rank_at - w.enqueued_at), NULL, NULL, NULL,
       now() + interval '8 hours', now() + interval '6 hours', NULL, NULL,
       now() + interval '8 hours', NULL, '', NULL, '[]', '', 0, 0, now()
  FROM unnest(%s::bigint[]) AS t(id) JOIN routing_workitem w ON w.id = t.id
"""


@dataclass
class ReviewerRun:
    user_id: int
    ids: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    finished_at: list[float] = field(default_factory=list)


def _reviewer(
    user_id: int,
    barrier: Any,
    results: Any,
    stop: Any,
    counter: Any,
    complete: bool,
) -> None:
    """One reviewer process: claim (and in churn, complete) until told to stop, or
    until nothing is left to claim; send back every claim's id, duration and end."""
    from django.contrib.auth import get_user_model
    from django.db import connections

    from routing.services import work_item_claim_next, work_item_complete

    run = ReviewerRun(user_id)
    try:
        reviewer = get_user_model().objects.get(pk=user_id)
        barrier.wait(timeout=120)
        while not stop.is_set():
            started = time.monotonic()
            item = work_item_claim_next(reviewer=reviewer)
            ended = time.monotonic()
            if item is None:
                if not complete:
                    break  # the backlog is gone
                time.sleep(0.01)  # churn: wait for the feeder
                continue
            run.ids.append(item.pk)
            run.seconds.append(ended - started)
            run.finished_at.append(ended)
            with counter.get_lock():
                counter.value += 1
            if complete:
                work_item_complete(item=item, actor=reviewer)
        results.put(("ok", run))
    except BaseException:
        results.put(("error", f"reviewer {user_id}: {traceback.format_exc()}"))
    finally:
        connections.close_all()


def _feeder(bench_url: str, templates: list[int], stop: Any, counter: Any) -> None:
    """Churn's producer: enqueue as many new items as have been claimed, every 0.2 s."""
    import psycopg

    enqueued = 0
    with psycopg.connect(bench_url, autocommit=True) as conn:
        while not stop.is_set():
            claimed = counter.value
            if claimed > enqueued:
                count = claimed - enqueued
                ids = [templates[(enqueued + k) % len(templates)] for k in range(count)]
                conn.execute(FEED, [ids])
                enqueued = claimed
            time.sleep(0.2)


@dataclass
class Swarm:
    runs: list[ReviewerRun]
    started: float
    stopped: float

    @property
    def ids(self) -> list[int]:
        return [pk for run in self.runs for pk in run.ids]

    @property
    def latencies_ms(self) -> list[float]:
        return [s * 1000 for run in self.runs for s in run.seconds]

    @property
    def ends(self) -> list[float]:
        return [t for run in self.runs for t in run.finished_at]


def _gather(results: Any, count: int, who: str) -> list[ReviewerRun]:
    """Every process's report, within the hour; the first error raised as it came."""
    runs: list[ReviewerRun] = []
    deadline = time.monotonic() + 3600
    while len(runs) < count:
        try:
            status, payload = results.get(timeout=max(1.0, deadline - time.monotonic()))
        except queue.Empty:
            raise BenchError(f"{who} did not report back within an hour") from None
        if status != "ok":
            raise BenchError(payload)
        runs.append(payload)
    return runs


def _reap(processes: list[Any]) -> None:
    for process in processes:
        process.join(timeout=60)
        if process.is_alive():
            process.kill()


def run_reviewers(
    ctx: Context, *, seconds: float | None = None, feed_from: list[int] | None = None
) -> Swarm:
    """Start one process per reviewer (forked from this one, so Arbiter is loaded
    once), release them together, and collect what each claimed. Without `seconds`
    they claim until the backlog is empty; with it they claim and complete for that
    long while the feeder keeps the backlog topped up."""
    from django.db import connections

    connections.close_all()  # a connection must not cross a fork
    mp = multiprocessing.get_context("fork")
    reviewers = ctx.world.reviewer_ids
    barrier = mp.Barrier(len(reviewers) + 1)
    results = mp.Queue()
    stop = mp.Event()
    counter = mp.Value("q", 0)
    churn = seconds is not None
    processes = [
        mp.Process(target=_reviewer, args=(pk, barrier, results, stop, counter, churn))
        for pk in reviewers
    ]
    if feed_from:
        processes.append(mp.Process(target=_feeder, args=(ctx.bench_url, feed_from, stop, counter)))
    for process in processes:
        process.start()
    try:
        barrier.wait(timeout=120)
        started = time.monotonic()
        if seconds is not None:
            next_note = started + 60
            while (now := time.monotonic()) < started + seconds:
                time.sleep(min(1.0, started + seconds - now))
                if time.monotonic() >= next_note:
                    progress(
                        f"churn: {time.monotonic() - started:,.0f} s, {counter.value:,} claimed"
                    )
                    next_note += 60
            stop.set()
        stopped = started + seconds if seconds else 0.0
        runs = _gather(results, len(reviewers), "reviewer processes")
    finally:
        stop.set()
        _reap(processes)
    swarm = Swarm(runs, started, stopped)
    if not churn:
        swarm.stopped = max(swarm.ends, default=started)
    return swarm


def _raw_claimer(bench_url: str, rid: int, barrier: Any, results: Any) -> None:
    """One floor process: claim with RAW_CLAIM until nothing is left; report like a
    reviewer."""
    import psycopg

    run = ReviewerRun(rid)
    try:
        with psycopg.connect(bench_url, autocommit=True) as conn:
            barrier.wait(timeout=120)
            while True:
                started = time.monotonic()
                row = conn.execute(RAW_CLAIM, [rid]).fetchone()
                ended = time.monotonic()
                if row is None:
                    break
                run.ids.append(row[0])
                run.seconds.append(ended - started)
                run.finished_at.append(ended)
        results.put(("ok", run))
    except BaseException:
        results.put(("error", f"floor claimer {rid}: {traceback.format_exc()}"))


def run_raw_claimers(ctx: Context) -> Swarm:
    """As many floor processes as reviewers, released together, until bench_claim has
    nothing queued."""
    mp = multiprocessing.get_context("spawn")  # no Django state to carry: a clean start
    count = len(ctx.world.reviewer_ids)
    barrier = mp.Barrier(count + 1)
    results = mp.Queue()
    processes = [
        mp.Process(target=_raw_claimer, args=(ctx.bench_url, rid, barrier, results))
        for rid in range(1, count + 1)
    ]
    for process in processes:
        process.start()
    try:
        barrier.wait(timeout=120)
        started = time.monotonic()
        runs = _gather(results, count, "floor claimers")
    finally:
        _reap(processes)
    swarm = Swarm(runs, started, 0.0)
    swarm.stopped = max(swarm.ends, default=started)
    return swarm


@dataclass
class FloorRound:
    claims: int
    tps: float
    p50_ms: float
    p99_ms: float


def _floor_round(ctx: Context, total: int) -> FloorRound:
    """The floor over bench_claim queued again, after the baseline's round on it."""
    execute(REQUEUE.format(table="bench_claim"))
    vacuum("bench_claim")
    swarm = run_raw_claimers(ctx)
    ids = swarm.ids
    claimed = int(scalar("SELECT count(*) FROM bench_claim WHERE state = 'claimed'"))
    if not len(ids) == len(set(ids)) == claimed == total:
        raise BenchError(
            f"claim floor: {len(ids)} claims, {len(set(ids))} distinct, {claimed} rows "
            f"claimed, {total} queued"
        )
    latencies = swarm.latencies_ms
    return FloorRound(
        claims=len(ids),
        tps=len(ids) / (swarm.stopped - swarm.started),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
    )


@dataclass
class ClaimRound:
    claims: int
    tps: float
    p50_ms: float
    p99_ms: float
    double_claims: int
    left_queued: int
    cpu: dict[str, float]


def _service_round(ctx: Context, total: int) -> ClaimRound:
    sampler = CpuSampler([os.getpid()], label="reviewers", reaped="reviewers")
    sampler.start()
    swarm = run_reviewers(ctx)
    cpu = sampler.stop()
    ids = swarm.ids
    holder = {pk: run.user_id for run in swarm.runs for pk in run.ids}
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT id, assignee_id FROM routing_workitem WHERE state = 'claimed'")
        rows = dict(cursor.fetchall())
    # claims returned == rows claimed == distinct ids, each row held by whoever got it
    doubles = (len(ids) - len(set(ids))) + abs(len(rows) - len(set(ids)))
    doubles += sum(1 for pk, user in holder.items() if rows.get(pk) != user)
    left = int(scalar("SELECT count(*) FROM routing_workitem WHERE state = 'queued'"))
    elapsed = swarm.stopped - swarm.started
    latencies = swarm.latencies_ms
    if not latencies:
        raise BenchError("the reviewers claimed nothing")
    return ClaimRound(
        claims=len(ids),
        tps=len(ids) / elapsed,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        double_claims=doubles,
        left_queued=left,
        cpu=cpu,
    )


def _baseline_round(ctx: Context, total: int, tag: str) -> PgbenchResult:
    reviewers = len(ctx.world.reviewer_ids)
    result = run_pgbench(
        ctx.parts,
        script=CLAIM_SCRIPT.format(reviewers=reviewers),
        clients=reviewers,
        threads=2,
        transactions_per_client=total // reviewers,
        workdir=ctx.workdir,
        tag=tag,
    )
    claimed = int(scalar("SELECT count(*) FROM bench_claim WHERE state = 'claimed'"))
    if claimed != total:
        raise BenchError(f"baseline (b) claimed {claimed} rows in {total} transactions")
    return result


def prepare_claimable(ctx: Context, total: int) -> None:
    """`total` queued items over the bench queues (bench_seed, then all made waiting),
    and bench_claim, a copy of the same rows for the baseline."""
    reset_work()
    seed(total, open_share=1.0, queues=ctx.sizes.queues)
    execute(REQUEUE.format(table="routing_workitem"))
    for statement in BASELINE_TABLE:
        execute(statement)
    vacuum("routing_workitem", "bench_claim")


def round_size(ctx: Context) -> int:
    """Claims a round: the run's claims over the rounds, a whole number per reviewer."""
    reviewers = len(ctx.world.reviewer_ids)
    return math.ceil(ctx.sizes.claims / REPEATS / reviewers) * reviewers


def claim_phase(ctx: Context) -> list[Line]:
    reviewers = len(ctx.world.reviewer_ids)
    total = round_size(ctx)
    progress(f"claim: seeding {total:,} queued items and the baseline's copy")
    prepare_claimable(ctx, total)
    rounds: list[dict[str, Any]] = []
    for n in range(1, REPEATS + 1):
        if n > 1:
            execute(REQUEUE.format(table="bench_claim"))
            execute(REQUEUE.format(table="routing_workitem"))
            vacuum("routing_workitem", "bench_claim")
        base = _baseline_round(ctx, total, tag=f"claim-{n}")
        service = _service_round(ctx, total)
        floor = _floor_round(ctx, total)
        rounds.append(
            {"baseline": base.__dict__, "service": service.__dict__, "floor": floor.__dict__}
        )
        progress(
            f"claim round {n}/{REPEATS}: (b) {base.tps:,.0f} tps p99 {base.p99_ms:.1f} ms | "
            f"service {service.tps:,.0f} claims/s p99 {service.p99_ms:.1f} ms, "
            f"{service.claims:,} claims, {service.double_claims} double, "
            f"{service.left_queued} left queued | floor {floor.tps:,.0f} claims/s p99 "
            f"{floor.p99_ms:.1f} ms"
        )
    tps = [r["service"]["tps"] for r in rounds]
    base_tps = [r["baseline"]["tps"] for r in rounds]
    p99 = [r["service"]["p99_ms"] for r in rounds]
    base_p99 = [r["baseline"]["p99_ms"] for r in rounds]
    doubles = sum(r["service"]["double_claims"] for r in rounds)
    left = sum(r["service"]["left_queued"] for r in rounds)
    claims = sum(r["service"]["claims"] for r in rounds)
    tps_ratio = median(a / b for a, b in zip(tps, base_tps, strict=True))
    p99_ratio = median(a / b for a, b in zip(p99, base_p99, strict=True))
    enough = claims >= ISSUE_CLAIMS
    return [
        Line(
            f"Claim: next item, {reviewers} reviewers",
            median(tps),
            "claims/s",
            f">= {GOAL_TPS_SHARE:.2f} x (b)",
            tps_ratio >= GOAL_TPS_SHARE,
            baseline=median(base_tps),
            baseline_name="(b)",
            ratio=tps_ratio,
            detail=f"{reviewers} processes, {total:,} claims x{REPEATS}",
            runs={"rounds": rounds},
        ),
        Line(
            "Claim: double claims",
            doubles,
            "",
            f"0 in >= {ISSUE_CLAIMS:,} claims",
            doubles == 0 and left == 0 and (enough or ctx.sizes.quick),
            detail=f"{claims:,} claims checked in SQL"
            + (f"; {left} items left unclaimed" if left else "")
            + ("" if enough else f"; below {ISSUE_CLAIMS:,} (quick run)"),
        ),
        Line(
            "Claim: p99 latency",
            median(p99),
            "ms",
            f"<= {GOAL_P99_FACTOR:.0f} x (b) p99",
            p99_ratio <= GOAL_P99_FACTOR,
            baseline=median(base_p99),
            baseline_name="(b) p99",
            ratio=p99_ratio,
            detail=f"p50 {median(r['service']['p50_ms'] for r in rounds):.1f} ms",
        ),
        _claim_floor_line(rounds, reviewers),
    ]


def _claim_floor_line(rounds: list[dict[str, Any]], reviewers: int) -> Line:
    return floor_line(
        rounds,
        "floor",
        name="Claim floor: (b)'s statement from Python",
        unit="claims/s",
        baseline_name="(b)",
        goal=f"the claim's goal {GOAL_TPS_SHARE:.2f} x (b)",
        detail=f"{reviewers} processes, psycopg, no Django",
    )


def _table_state() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_live_tup, n_dead_tup, pg_total_relation_size('routing_workitem') "
            "FROM pg_stat_user_tables WHERE relname = 'routing_workitem'"
        )
        live, dead, size = cursor.fetchone() or (0, 0, 0)
    return {"live_rows": live, "dead_rows": dead, "bytes": size}


def churn_phase(ctx: Context) -> list[Line]:
    """Claim, complete and enqueue at the same rate for the whole duration; compare the
    claim rate of the last window (a minute in the full run) with the first."""
    seconds = ctx.sizes.churn_seconds
    window = min(60.0, seconds / 5)
    reviewers = len(ctx.world.reviewer_ids)
    backlog = round_size(ctx)
    if scalar("SELECT count(*) FROM routing_workitem") != backlog:
        prepare_claimable(ctx, backlog)
    execute(REQUEUE.format(table="routing_workitem"))
    vacuum("routing_workitem")
    templates = [
        int(pk) for pk in _column("SELECT id FROM routing_workitem ORDER BY random() LIMIT 1000")
    ]
    before = _table_state()
    autovacuum = str(scalar("SHOW autovacuum"))
    sampler = CpuSampler([os.getpid()], label="reviewers", reaped="reviewers")
    progress(
        f"churn: {reviewers} reviewers claim and complete for {seconds} s over a backlog of "
        f"{backlog:,}; the feeder enqueues as many as they claim (autovacuum {autovacuum})"
    )
    sampler.start()
    swarm = run_reviewers(ctx, seconds=seconds, feed_from=templates)
    cpu = sampler.stop()
    after = _table_state()
    ends = sorted(swarm.ends)
    first = sum(1 for t in ends if t < swarm.started + window) / window
    last = sum(1 for t in ends if swarm.stopped - window <= t < swarm.stopped) / window
    bins = max(1, int(seconds // window))
    series = [
        round(
            sum(
                1
                for t in ends
                if swarm.started + k * window <= t < swarm.started + (k + 1) * window
            )
            / window,
            1,
        )
        for k in range(bins)
    ]
    progress(
        f"churn: {len(ends):,} claims; first {window:.0f} s {first:,.0f}/s, last "
        f"{last:,.0f}/s; dead rows {before['dead_rows']:,} -> {after['dead_rows']:,}"
    )
    ratio = last / first if first else 0.0
    return [
        Line(
            "Queue health: claims/s, last vs first window",
            last,
            "claims/s",
            f">= {GOAL_HEALTH_SHARE:.2f} x first",
            ratio >= GOAL_HEALTH_SHARE,
            baseline=first,
            baseline_name="first",
            ratio=ratio,
            detail=f"{seconds / 60:.0f} min churn, {window:.0f} s windows, "
            f"dead rows {after['dead_rows']:,}",
            runs={
                "window_s": window,
                "claims_per_s_by_window": series,
                "table_before": before,
                "table_after": after,
                "autovacuum": autovacuum,
                "latency_p99_ms": percentile(swarm.latencies_ms, 99),
                "cpu_share_percent": cpu,
            },
        )
    ]


def _column(statement: str) -> list[Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement)
        return [row[0] for row in cursor.fetchall()]
