"""Arbiter's benchmark suite (`make bench`): every speed goal of issue 10 as one line of
one table, each figure next to a PostgreSQL baseline measured in the same invocation.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/arbiter \\
        .venv/bin/python -m bench.run [--quick] [--scale-5m] [--scaling] [--only ...]

The suite never touches the DATABASE_URL database itself: it creates its own,
arbiter_benchsuite, on that server, migrates it, and drops it at the end (audit_verify
does the same with arbiter_bench). Web load goes through gunicorn (DEBUG off) driven by
wrk; the baselines come from pgbench. Interleaved rounds, median of 3; see
bench/README.md for what each line measures. Progress goes to stderr, the table to
stdout, every figure to bench/results/latest.json.

Exit status: 0 every goal met, 1 a goal missed (or a measurement failed), 2 bad usage
(no DATABASE_URL, no pgbench or wrk, no broker).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_DB,
    CELERY_QUEUE,
    REPEATS,
    RESULTS_DIR,
    ROOT,
    BenchError,
    Line,
    UsageError,
    drop_database,
    lock_server,
    postgres_url,
    progress,
    recreate_database,
    require_tools,
    server_facts,
    table,
    with_database,
)
from bench.world import (
    Context,
    Sizes,
    app_env,
    broker_queue_drop,
    build_world,
    check_broker,
    new_secret_key,
    setup_django,
)

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
PHASES = ("audit_verify", "intake", "scaling", "claim", "churn", "sla", "dashboard")
DEFAULT_PHASES = tuple(p for p in PHASES if p != "scaling")
GOAL_AUDIT_RATE = 100_000.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cpus = os.cpu_count() or 1
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Arbiter's speed goals, each next to a PostgreSQL baseline.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and short runs: a check of the whole suite in a few minutes",
    )
    parser.add_argument(
        "--scale-5m", action="store_true", help="also the 5,000,000-item dashboard line"
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="also intake at 1/2/4 web workers and the engine at 1/2/4 Celery processes",
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated phases to run (of {', '.join(PHASES)})",
    )
    parser.add_argument("--intake-seconds", type=int, help="wrk/pgbench seconds a run (30)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (8)")
    parser.add_argument(
        "--web-workers", type=int, default=2 * cpus + 1, help="gunicorn workers (2 x CPUs + 1)"
    )
    parser.add_argument(
        "--claims", type=int, help="claims over the 3 rounds (100,000); a third is the backlog"
    )
    parser.add_argument("--reviewers", type=int, default=32, help="reviewer processes (32)")
    parser.add_argument("--churn-seconds", type=int, help="queue health churn (600)")
    parser.add_argument("--sla-items", type=int, help="open items for the SLA sweep (100,000)")
    parser.add_argument("--dashboard-items", type=int, help="work items (1,000,000)")
    parser.add_argument("--audit-events", type=int, help="events for audit_verify (300,000)")
    parser.add_argument("--engine-cases", type=int, help="cases a --scaling engine run (600)")
    parser.add_argument("--queues", type=int, default=10, help="bench queues (10)")
    parser.add_argument(
        "--redis-url", default="", help="a Redis for the app's cache (default: per-process memory)"
    )
    parser.add_argument(
        "--keep-db", action="store_true", help=f"leave {BENCH_DB} behind for inspection"
    )
    return parser.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> Sizes:
    quick = bool(args.quick)

    def pick(value: int | None, full: int, small: int) -> int:
        return value if value is not None else (small if quick else full)

    sizes = Sizes(
        quick=quick,
        intake_seconds=pick(args.intake_seconds, 30, 5),
        intake_connections=args.connections,
        web_workers=args.web_workers,
        claims=pick(args.claims, 100_000, 4_800),
        reviewers=args.reviewers,
        churn_seconds=pick(args.churn_seconds, 600, 60),
        sla_items=pick(args.sla_items, 100_000, 10_000),
        dashboard_items=pick(args.dashboard_items, 1_000_000, 100_000),
        audit_events=pick(args.audit_events, 300_000, 30_000),
        engine_cases=pick(args.engine_cases, 600, 100),
        queues=args.queues,
        scale_5m=bool(args.scale_5m),
    )
    for name in ("intake_seconds", "claims", "reviewers", "churn_seconds", "sla_items"):
        if getattr(sizes, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if sizes.churn_seconds < 10:
        raise UsageError("--churn-seconds must be at least 10 (it compares two windows)")
    if sizes.sla_items < 100 or sizes.dashboard_items < 100 or sizes.audit_events < 1000:
        raise UsageError("--sla-items and --dashboard-items >= 100, --audit-events >= 1000")
    return sizes


def phases_from(args: argparse.Namespace) -> list[str]:
    if args.only:
        chosen = [p.strip() for p in args.only.split(",") if p.strip()]
        unknown = sorted(set(chosen) - set(PHASES))
        if unknown:
            raise UsageError(f"--only: unknown phase(s) {', '.join(unknown)}; of {PHASES}")
    else:
        chosen = list(DEFAULT_PHASES) + (["scaling"] if args.scaling else [])
    return [p for p in PHASES if p in chosen]


# --- audit_verify ----------------------------------------------------------------


def audit_verify_line(events: int, env: dict[str, str]) -> list[Line]:
    """bench/audit_verify.py as it is, in a subprocess; its events/s figure becomes a line."""
    progress(f"audit_verify: bench/audit_verify.py --events {events:,} (its own database)")
    process = subprocess.Popen(  # noqa: S603 (our own script)
        [sys.executable, str(ROOT / "bench" / "audit_verify.py"), "--events", str(events)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for output in process.stdout or ():
        print(f"    audit_verify | {output.rstrip()}", file=sys.stderr, flush=True)
    status = process.wait()
    if status not in (0, 1):
        raise BenchError(f"bench/audit_verify.py exited {status}")
    report = json.loads((RESULTS_DIR / "audit_verify.json").read_text())
    rate = next(f for f in report["figures"] if f["figure"] == "events/s")
    return [
        Line(
            "Audit: audit_verify events/s",
            rate["value"],
            "events/s",
            f">= {GOAL_AUDIT_RATE:,.0f}/s",
            rate["value"] >= GOAL_AUDIT_RATE,
            baseline=rate["baseline"],
            baseline_name="raw stream",
            detail=f"{events:,} events, bench/audit_verify.py",
            runs={"verify_s": report["verify_s"], "stream_s": report["stream_s"]},
        )
    ]


# --- The run ---------------------------------------------------------------------


def _machine(bench_url: str) -> dict[str, Any]:
    memory = ""
    try:
        for entry in Path("/proc/meminfo").read_text().splitlines():
            if entry.startswith("MemTotal:"):
                memory = f"{int(entry.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "memory": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgresql": server_facts(bench_url),
    }


def _phase_runner(name: str) -> Callable[[Context], list[Line]]:
    from bench import claims, intake, reads, scaling

    return {
        "intake": intake.intake_phase,
        "scaling": scaling.scaling_phase,
        "claim": claims.claim_phase,
        "churn": claims.churn_phase,
        "sla": reads.sla_phase,
        "dashboard": reads.dashboard_phase,
    }[name]


def _error_line(phase: str, exc: BaseException) -> Line:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Line(f"{phase}: not measured", None, "", "-", False, detail=first[:100])


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM unwinds like Ctrl-C: servers stopped, reviewers told, database dropped."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    original_env = dict(os.environ)
    broker_url = os.environ.get("CELERY_BROKER_URL", "").strip() or DEFAULT_BROKER
    try:
        sizes = sizes_from(args)
        phases = phases_from(args)
        require_tools()
        parts = postgres_url(os.environ.get("DATABASE_URL", "").strip())
        if not broker_url.startswith(("amqp", "pyamqp")):
            raise UsageError(
                f"CELERY_BROKER_URL={broker_url}: the suite measures with RabbitMQ (amqp://)."
            )
        check_broker(broker_url)
        admin = lock_server(
            parts, f"bench.run: {'quick' if sizes.quick else 'full'} {','.join(phases)}"
        )
    except UsageError as exc:
        print(f"bench/run.py: {exc}", file=sys.stderr)
        return 2
    began = time.monotonic()
    mode = "quick" if sizes.quick else "full"
    progress(f"benchmark suite ({mode}): {', '.join(phases)}")
    lines: list[Line] = []
    errors: list[dict[str, str]] = []
    bench_url = with_database(parts, BENCH_DB)
    machine: dict[str, Any] = {}
    with admin, tempfile.TemporaryDirectory(prefix="arbiter-benchsuite-") as tmp:
        workdir = Path(tmp)
        recreate_database(admin)
        try:
            machine = _machine(bench_url)
            if "audit_verify" in phases:
                try:
                    lines += audit_verify_line(sizes.audit_events, original_env)
                except (BenchError, OSError, KeyError, StopIteration, ValueError) as exc:
                    errors.append({"phase": "audit_verify", "error": str(exc)})
                    lines.append(_error_line("audit_verify", exc))
            django_phases = [p for p in phases if p != "audit_verify"]
            if django_phases:
                env = app_env(
                    bench_url=bench_url,
                    data_dir=workdir / "data",
                    broker_url=broker_url,
                    secret_key=new_secret_key(),
                    redis_url=args.redis_url,
                )
                setup_django(env)
                progress(f"database {BENCH_DB} created; migrating and creating the world")
                world = build_world(reviewers=sizes.reviewers, queues=sizes.queues)
                ctx = Context(parts, bench_url, env, broker_url, workdir, world, sizes)
                for phase in django_phases:
                    try:
                        lines += _phase_runner(phase)(ctx)
                    except Exception as exc:
                        progress(f"{phase}: FAILED\n{traceback.format_exc()}")
                        errors.append({"phase": phase, "error": traceback.format_exc()})
                        lines.append(_error_line(phase, exc))
        finally:
            if "django" in sys.modules:
                from django.db import connections

                connections.close_all()
            if args.keep_db:
                progress(f"database {BENCH_DB} kept (--keep-db)")
            else:
                drop_database(admin)
                progress(f"database {BENCH_DB} dropped")
            broker_queue_drop(broker_url)
    passed = all(line.passed is not False for line in lines)
    total_s = time.monotonic() - began
    print(
        f"\nArbiter benchmark suite, {mode} run: {machine.get('cpus')} CPUs, PostgreSQL "
        f"{machine.get('postgresql', {}).get('server_version', '?')}; median of {REPEATS} "
        "interleaved rounds; ratio = median of the per-round ratios"
    )
    print(table(lines))
    missed = [line.name for line in lines if line.passed is False]
    print(f"{total_s / 60:.1f} min; " + (f"FAIL: {'; '.join(missed)}" if missed else "PASS"))
    report = {
        "suite": "make bench (bench/run.py)",
        "mode": mode,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "total_s": round(total_s, 1),
        "phases": phases,
        "sizes": asdict(sizes),
        "repeats": REPEATS,
        "celery_queue": CELERY_QUEUE,
        "machine": machine,
        "lines": [asdict(line) | {"result": line.verdict} for line in lines],
        "errors": errors,
        "passed": passed,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    target = RESULTS_DIR / "latest.json"
    target.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"figures written to {target.relative_to(ROOT)}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
