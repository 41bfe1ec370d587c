"""Benchmark: `audit_verify` over N hash-chained events on PostgreSQL, next to a baseline.

Requirement: "audit_verify streams (constant memory) and covers 1,000,000 events on
PostgreSQL in under 60 s". Run with DATABASE_URL pointing at any PostgreSQL database
of yours; the benchmark never touches that database: it drops and creates its own,
`arbiter_bench`, on the same server, migrates it (real tables, real append-only
triggers), fills it with N correctly chained events over M case chains plus the
global chain (COPY, hashes computed exactly as `audit.services.record` computes
them), takes a checkpoint, and drops the database again at the end.

Measured in the same invocation, interleaved, median of 3:
  baseline  streaming the same rows, same order, through a raw psycopg server-side
            cursor and doing nothing with them (the cost of reading);
  figure    `audit.verification.verify()` over the whole table.
Then one more verify under tracemalloc for the peak of traced Python memory (slow:
tracemalloc hooks every allocation, so this run takes several times as long and is not
timed). One table is printed; the figures go to bench/results/audit_verify.json.
Exit status: 0 every goal met, 1 a goal missed, 2 bad usage (e.g. not a postgres URL).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/arbiter \
        .venv/bin/python bench/audit_verify.py [--events N] [--cases M]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import resource
import secrets
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script (python bench/audit_verify.py)
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402 (needs ROOT on the path first)
    UsageError,
    drop_database,
    lock_server,
    postgres_url,
    recreate_database,
    with_database,
)

RESULTS = ROOT / "bench" / "results" / "audit_verify.json"
BENCH_DB = "arbiter_bench"
REPEATS = 3
CHUNK_SIZE = 5000  # what verify() streams with by default; the baseline uses the same
# Cases progress side by side: this many are open at once, so a chain's events are
# spread over the table (ids in time order) instead of lying next to each other.
OPEN_CASES = 1000

GOAL_SECONDS = 60.0
GOAL_RATE = 100_000.0
GOAL_MEMORY = 64 * 2**20
MIB = 2**20


def _setup_django(bench_url: str, data_dir: str) -> None:
    os.environ["DATABASE_URL"] = bench_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    # Production-like: DEBUG off (no query log, no debug cursor), a throwaway key.
    os.environ["DEBUG"] = "0"
    os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)
    os.environ["ARBITER_DATA_DIR"] = data_dir
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


# --- The events --------------------------------------------------------------------

ACTORS: tuple[tuple[str, str, str, str], ...] = (
    *(
        ("user", str(n), f"reviewer{n:03d}", f"10.20.{n // 250}.{n % 250 + 1}")
        for n in range(1, 41)
    ),
    ("system", "", "worker:orchestration", ""),
    ("system", "", "beat", ""),
    ("api_client", "7", "intake-api", "192.0.2.17"),
)
CASE_STEPS = (
    "step.started",
    "step.succeeded",
    "item.enqueued",
    "item.claimed",
    "decision.recorded",
    "gate.decided",
    "sla.warned",
    "item.released",
)
GLOBAL_ACTIONS = (
    "user.signed_in",
    "user.signed_out",
    "policy.changed",
    "queue.changed",
    "sla_policy.changed",
    "user.roles_changed",
    "client.created",
    "evidence.exported",
)
STATUSES = ("open", "in_review", "escalated", "approved", "rejected")
REASONS = ("", "", "", "tighter grid", "approved — documents complete ✓", "SLA 4h → 2h")


def _split(events: int, cases: int) -> tuple[int, int]:
    """(events on the global chain, events over all case chains)."""
    global_events = min(max(1, events // 100), events - cases)
    return global_events, events - global_events


def _plan(events: int, cases: int) -> Iterator[tuple[int, int, int]]:
    """(case number, 0 for the global chain; position; chain length), in time order."""
    global_events, case_events = _split(events, cases)
    base, extra = divmod(case_events, cases)
    stride = max(1, case_events // global_events)
    emitted = global_seq = 0
    for first in range(1, cases + 1, OPEN_CASES):
        group = range(first, min(first + OPEN_CASES, cases + 1))
        longest = base + (1 if first <= extra else 0)
        for seq in range(1, longest + 1):
            for case in group:
                length = base + (1 if case <= extra else 0)
                if seq > length:
                    continue
                yield case, seq, length
                emitted += 1
                if emitted % stride == 0 and global_seq < global_events:
                    global_seq += 1
                    yield 0, global_seq, global_events
    while global_seq < global_events:
        global_seq += 1
        yield 0, global_seq, global_events


def _rows(events: int, cases: int, global_head: tuple[int, str]) -> Iterator[tuple[Any, ...]]:
    """COPY rows (HASHED_FIELDS then hash), each hashed as audit.services.record does.

    The global chain continues from `global_head` (position, hash): migrate itself
    records an event or two there (guardian's AnonymousUser is created through record).
    """
    from audit.hashing import GENESIS_HASH, HASHED_FIELDS, event_hash, to_json_value
    from audit.models import ActorKind, AuditAction
    from audit.services import chain_for

    used = {"case.submitted", "case.completed", *CASE_STEPS, *GLOBAL_ACTIONS}
    unknown = used - set(AuditAction.values) | {a[0] for a in ACTORS} - set(ActorKind.values)
    if unknown:
        raise RuntimeError(f"not in AuditAction/ActorKind: {sorted(unknown)}")

    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    before_at, after_at = HASHED_FIELDS.index("before"), HASHED_FIELDS.index("after")
    global_offset, global_prev = global_head
    # case -> hash of the chain's newest event, while the case is open (at most OPEN_CASES)
    open_heads: dict[int, str] = {0: global_prev}
    for k, (case, seq, length) in enumerate(_plan(events, cases)):
        case_id = str(case) if case else ""
        actor_kind, actor_id, actor_name, client_ip = ACTORS[(k * 7 + case) % len(ACTORS)]
        before: dict[str, Any] | None
        after: dict[str, Any]
        if case:
            if seq == 1:
                action = "case.submitted"
            elif seq == length:
                action = "case.completed"
            else:
                action = CASE_STEPS[(seq + case) % len(CASE_STEPS)]
            object_type, object_id = "orchestration.step", str(case * 100 + seq)
            before = None if seq == 1 else {"status": STATUSES[(seq - 1) % len(STATUSES)]}
            after = {"status": STATUSES[seq % len(STATUSES)], "step": seq, "case": case_id}
        else:
            action = GLOBAL_ACTIONS[seq % len(GLOBAL_ACTIONS)]
            object_type, object_id = "accounts.user", str(seq % 40 + 1)
            before = {"roles": ["reviewer"], "active": True}
            after = {"roles": ["reviewer", "lead"], "active": seq % 5 != 0}
        fields: dict[str, Any] = {
            "chain": chain_for(case_id),
            "chain_seq": seq if case else global_offset + seq,
            # Strictly increasing, with microseconds that survive the round trip.
            "occurred_at": start + dt.timedelta(microseconds=k * 1000 + (k * 7919) % 997),
            "actor_kind": actor_kind,
            "actor_id": actor_id,
            "actor_name": actor_name,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "case_id": case_id,
            "correlation_id": f"{(k // 3 * 2654435761) % 2**128:032x}",
            "trace_id": f"{(k * 40503) % 2**128:032x}" if actor_kind == "user" else "",
            "request_id": f"req-{k // 3:09d}" if actor_kind != "system" else "",
            "client_ip": client_ip,
            "reason": REASONS[k % len(REASONS)],
            "before": to_json_value(before),
            "after": to_json_value(after),
            "prev_hash": open_heads.pop(case, GENESIS_HASH),
        }
        digest = event_hash(fields)
        if seq < length or not case:
            open_heads[case] = digest
        row = [fields[name] for name in HASHED_FIELDS]
        for at in (before_at, after_at):
            row[at] = None if row[at] is None else json.dumps(row[at])
        yield (*row, digest)


def _existing(bench_url: str) -> tuple[int, tuple[int, str]]:
    """(events already there, (position, hash) of the global chain's head) after migrate."""
    from audit.hashing import GENESIS_HASH
    from audit.models import GLOBAL_CHAIN

    with psycopg.connect(bench_url) as conn:
        heads = conn.execute(
            "SELECT DISTINCT ON (chain) chain, chain_seq, hash FROM audit_auditevent "
            "ORDER BY chain, chain_seq DESC"
        ).fetchall()
        row = conn.execute("SELECT count(*) FROM audit_auditevent").fetchone()
    if any(chain != GLOBAL_CHAIN for chain, _seq, _hash in heads):
        raise RuntimeError(f"migrate left case chains behind, not only the global one: {heads}")
    count = row[0] if row else 0
    return count, ((heads[0][1], heads[0][2]) if heads else (0, GENESIS_HASH))


def _fill(bench_url: str, events: int, cases: int, global_head: tuple[int, str]) -> None:
    from audit.hashing import HASHED_FIELDS

    columns = sql.SQL(", ").join(map(sql.Identifier, (*HASHED_FIELDS, "hash")))
    copy_sql = sql.SQL("COPY audit_auditevent ({}) FROM STDIN").format(columns)
    with psycopg.connect(bench_url) as conn:
        with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in _rows(events, cases, global_head):
                copy.write_row(row)
        conn.commit()
        # Steady state for the reads: statistics, visibility map and hint bits set, as
        # autovacuum leaves a table that has been there a while.
        conn.autocommit = True
        conn.execute("VACUUM (ANALYZE) audit_auditevent")


def _check_sample(events: int, cases: int, global_offset: int) -> None:
    """A case and the global chain recompute correctly (so the generator hashes right).

    The global chain begins with the events migrate wrote through record(): verifying
    it also shows the generated events chain onto record()'s exactly.
    """
    from audit.verification import verify

    global_events, case_events = _split(events, cases)
    global_events += global_offset
    base, extra = divmod(case_events, cases)
    case = cases // 2 + 1
    expected = base + (1 if case <= extra else 0)
    for case_id, count in ((str(case), expected), ("", global_events)):
        result = verify(case_id=case_id)
        if not result.ok or result.events_checked != count or result.chains_checked != 1:
            raise RuntimeError(
                f"sample chain {case_id or 'global'!r} does not verify: {result.as_dict()}"
            )


# --- Measuring ---------------------------------------------------------------------


def _stream_sql() -> sql.Composed:
    from audit.hashing import HASHED_FIELDS

    columns = sql.SQL(", ").join(map(sql.Identifier, ("id", *HASHED_FIELDS, "hash")))
    return sql.SQL("SELECT {} FROM audit_auditevent ORDER BY chain, chain_seq").format(columns)


def _make_baseline(bench_url: str, events: int) -> Callable[[], None]:
    """Read every row in verify's order through a server-side cursor; nothing per row."""
    query = _stream_sql()

    def stream() -> None:
        count = 0
        with (
            psycopg.connect(bench_url) as conn,
            conn.cursor(name="bench_stream") as cursor,
        ):
            cursor.itersize = CHUNK_SIZE
            cursor.execute(query)
            for _row in cursor:
                count += 1
        if count != events:
            raise RuntimeError(f"baseline read {count} rows, expected {events}")

    return stream


def _make_verify(events: int, chains: int, jobs: int) -> Callable[[], None]:
    """verify() over the whole table in `jobs` processes (audit_verify's default is one
    per CPU); tracing memory uses one process, since tracemalloc sees only its own."""
    from audit.verification import verify

    def run() -> None:
        result = verify(jobs=jobs)
        # A fast answer that stopped early proves nothing: it must be a full, clean pass.
        if (
            not result.ok
            or result.events_checked != events
            or result.chains_checked != chains
            or result.checkpoint_id is None
        ):
            raise RuntimeError(f"verify did not pass over the whole table: {result.as_dict()}")

    return run


def _timed(run: Callable[[], None]) -> float:
    gc.collect()
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _traced_peak(run: Callable[[], None]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


@dataclass
class Run:
    fill_s: float
    stream_s: list[float]
    verify_s: list[float]
    rss_growth: int
    verify_peak: int


def _run(bench_url: str, events: int, cases: int, server: int) -> Run:
    """Migrate and fill the (new, empty) benchmark database, then measure."""
    chains = cases + 1
    with tempfile.TemporaryDirectory(prefix="arbiter-bench-") as data_dir:
        _setup_django(bench_url, data_dir)
        from django.db import connections

        from audit.services import checkpoint_create

        try:
            _step(f"database {BENCH_DB} created and migrated (PostgreSQL {server})")
            migrated, global_head = _existing(bench_url)
            generated = events - migrated
            if not 1 <= cases < generated:
                raise RuntimeError(f"migrate wrote {migrated} events: too few left to fill")
            started = time.perf_counter()
            _fill(bench_url, generated, cases, global_head)
            fill_s = time.perf_counter() - started
            _step(
                f"filled {generated:,} events (+{migrated} written by migrate) with COPY "
                f"+ VACUUM ANALYZE in {fill_s:.1f} s"
            )
            checkpoint = checkpoint_create()
            _check_sample(generated, cases, global_head[0])
            _step(f"checkpoint #{checkpoint.pk} taken; sample case and global chain verify")

            baseline, measured = (
                _make_baseline(bench_url, events),
                _make_verify(events, chains, jobs=os.cpu_count() or 1),
            )
            rss_before = _max_rss()
            stream_s: list[float] = []
            verify_s: list[float] = []
            for round_no in range(1, REPEATS + 1):
                stream_s.append(_timed(baseline))
                verify_s.append(_timed(measured))
                _step(
                    f"round {round_no}/{REPEATS}: stream {stream_s[-1]:.2f} s, "
                    f"verify {verify_s[-1]:.2f} s"
                )
            rss_growth = max(0, _max_rss() - rss_before)
            _step("one more verify under tracemalloc (several times slower, not timed)")
            verify_peak = _traced_peak(_make_verify(events, chains, jobs=1))
            _step(f"peak traced Python memory during verify: {verify_peak / MIB:.1f} MiB")
        finally:
            connections.close_all()
    return Run(fill_s, stream_s, verify_s, rss_growth, verify_peak)


@dataclass
class Figure:
    figure: str
    value: float
    unit: str
    baseline: float | None
    goal: str
    passed: bool | None  # None: informational

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "events/s":
        return f"{value:,.0f}/s"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:.2f}{unit}"


def _table(figures: list[Figure]) -> str:
    header = ("figure", "value", "baseline", "ratio", "goal", "result")
    lines = [
        (
            f.figure,
            _fmt(f.value, f.unit),
            _fmt(f.baseline, f.unit),
            "-" if f.ratio is None else f"{f.ratio:.2f}x",
            f.goal,
            "info" if f.passed is None else ("PASS" if f.passed else "FAIL"),
        )
        for f in figures
    ]
    widths = [max(len(row[i]) for row in (header, *lines)) for i in range(len(header))]

    def render(row: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *map(render, lines)])


_STARTED = time.perf_counter()


def _say(message: str) -> None:
    print(message, flush=True)


def _step(message: str) -> None:
    """A progress line, stamped with the time since the benchmark started."""
    _say(f"[{time.perf_counter() - _STARTED:7.1f} s] {message}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000, help="events (default 1e6)")
    parser.add_argument("--cases", type=int, help="case chains (default events/10)")
    args = parser.parse_args(argv)
    events: int = args.events
    cases: int = args.cases if args.cases is not None else events // 10
    try:
        if events < 2:
            raise UsageError("--events must be at least 2")
        if not 1 <= cases < events:
            raise UsageError("--cases must be at least 1 and below --events")
        parts = postgres_url(os.environ.get("DATABASE_URL", "").strip(), database=BENCH_DB)
        admin = lock_server(parts, "bench/audit_verify.py", database=BENCH_DB)
    except UsageError as exc:
        print(f"bench/audit_verify.py: {exc}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    _step(f"audit_verify benchmark: {events:,} events in {cases:,} case chains + global")
    with admin:
        recreate_database(admin, BENCH_DB)
        server = admin.info.server_version
        try:
            run = _run(with_database(parts, BENCH_DB), events, cases, server)
        finally:
            drop_database(admin, BENCH_DB)
    total_s = time.perf_counter() - began
    _step(f"database {BENCH_DB} dropped")
    fill_s, stream_s, verify_s = run.fill_s, run.stream_s, run.verify_s
    rss_growth, verify_peak, chains = run.rss_growth, run.verify_peak, cases + 1

    verify_med, stream_med = statistics.median(verify_s), statistics.median(stream_s)
    figures = [
        Figure(
            f"verify seconds for {events:,} events",
            verify_med,
            "s",
            stream_med,
            f"< {GOAL_SECONDS:.0f} s",
            verify_med < GOAL_SECONDS,
        ),
        Figure(
            "events/s",
            events / verify_med,
            "events/s",
            events / stream_med,
            f">= {GOAL_RATE:,.0f}/s",
            events / verify_med >= GOAL_RATE,
        ),
        Figure(
            "verify time / read-only stream time",
            verify_med / stream_med,
            "x",
            None,
            "-",
            None,
        ),
        Figure(
            "peak traced Python memory (tracemalloc)",
            verify_peak / MIB,
            "MiB",
            None,
            f"< {GOAL_MEMORY // MIB} MiB",
            verify_peak < GOAL_MEMORY,
        ),
        Figure("max RSS growth over the timed rounds", rss_growth / MIB, "MiB", None, "-", None),
    ]
    passed = all(f.passed is not False for f in figures)
    _say("")
    _say(
        f"audit_verify on PostgreSQL: {events:,} events, {chains:,} chains, "
        f"median of {REPEATS}; verify in {os.cpu_count() or 1} processes (audit_verify's "
        "default); baseline = raw psycopg server-side stream of the same rows in one"
    )
    _say(_table(figures))
    missed = ", ".join(f.figure for f in figures if f.passed is False)
    _say(
        f"fill {fill_s:.1f} s; whole run {total_s:.1f} s; "
        + (f"FAIL: {missed}" if missed else "PASS")
    )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "audit_verify",
        "requirement": (
            "audit_verify streams (constant memory) and covers 1,000,000 events on "
            "PostgreSQL in under 60 s"
        ),
        "events": events,
        "cases": cases,
        "chains": chains,
        "repeats": REPEATS,
        "verify_s": verify_s,
        "stream_s": stream_s,
        "fill_s": fill_s,
        "total_s": total_s,
        "figures": [asdict(f) | {"ratio": f.ratio} for f in figures],
        "passed": passed,
        "postgresql": server,
        "python": platform.python_version(),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    _say(f"figures written to {RESULTS.relative_to(ROOT)}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
