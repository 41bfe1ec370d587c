"""How the figures move with the number of processes (`--scaling`, for docs/scaling.md):
intake with 1, 2 and 4 gunicorn workers, and the engine (a task step run by Celery,
then the review gate) with 1, 2 and 4 Celery worker processes. These lines inform;
they carry no goal."""

from __future__ import annotations

import signal
import subprocess
import time
from typing import IO, Any

from bench.common import (
    CELERY_QUEUE,
    REPEATS,
    ROOT,
    VENV_BIN,
    BenchError,
    Line,
    die_with_parent,
    median,
    progress,
)
from bench.intake import Gunicorn, run_wrk
from bench.world import ENGINE_PAYLOAD, ENGINE_WORKFLOW, Context, broker_queue_purge, scalar

PROCESS_COUNTS = (1, 2, 4)


def web_scaling(ctx: Context) -> list[Line]:
    sizes = ctx.sizes
    servers = {
        workers: Gunicorn(ctx.env, workers=workers, log=ctx.workdir / f"gunicorn-{workers}w.log")
        for workers in PROCESS_COUNTS
    }
    results: dict[int, list[dict[str, Any]]] = {workers: [] for workers in PROCESS_COUNTS}
    try:
        for server in servers.values():
            server.start()
            run_wrk(
                server,
                seconds=2,
                connections=sizes.intake_connections,
                token=ctx.world.token,
                run_id=f"warm{server.workers}w",
            )
        for n in range(1, REPEATS + 1):
            for workers, server in servers.items():
                result = run_wrk(
                    server,
                    seconds=sizes.intake_seconds,
                    connections=sizes.intake_connections,
                    token=ctx.world.token,
                    run_id=f"s{workers}w{n}",
                    sample_cpu=True,
                )
                results[workers].append(result.__dict__)
                progress(
                    f"scaling round {n}/{REPEATS}: {workers} web worker(s) {result.tps:,.1f} "
                    f"req/s, p99 {result.p99_ms:.0f} ms, CPU {result.cpu}"
                )
    finally:
        for server in servers.values():
            server.stop()
    broker_queue_purge(ctx.broker_url)
    lines = []
    for workers, runs in results.items():
        cpu = runs[len(runs) // 2]["cpu"]
        lines.append(
            Line(
                f"Scaling: intake, {workers} web worker(s)",
                median(r["tps"] for r in runs),
                "req/s",
                "-",
                None,
                detail=f"p99 {median(r['p99_ms'] for r in runs):.0f} ms; CPU % web "
                f"{cpu.get('web workers', 0):.0f} pg {cpu.get('postgresql', 0):.0f}",
                runs={"rounds": runs},
            )
        )
    return lines


def _submit(count: int, tag: str) -> None:
    from audit.context import Actor
    from orchestration.services import case_submit

    actor = Actor.system("bench")
    for n in range(count):
        case_submit(
            workflow=ENGINE_WORKFLOW["slug"],  # type: ignore[arg-type]
            payload=ENGINE_PAYLOAD,
            actor=actor,
            external_ref=f"{tag}-{n}",
        )


def _reached_review(tag: str) -> int:
    return int(
        scalar(
            "SELECT count(*) FROM orchestration_steprun s "
            "JOIN orchestration_case c ON c.id = s.case_id "
            "WHERE c.external_ref LIKE %s AND s.step_id = 'check'",
            [f"{tag}-%"],
        )
    )


def _engine_run(ctx: Context, processes: int, cases: int, tag: str) -> dict[str, Any]:
    """Submit `cases` with no worker running (their step tasks wait in the broker),
    then start a worker with `processes` and time the middle 80 % of the drain."""
    broker_queue_purge(ctx.broker_url)
    _submit(cases, tag)
    log_path = ctx.workdir / f"celery-{tag}.log"
    log: IO[str] = log_path.open("w")
    worker = subprocess.Popen(  # noqa: S603 (our own command line)
        [
            str(VENV_BIN / "celery"),
            "-A",
            "config",
            "worker",
            "-Q",
            CELERY_QUEUE,
            "-c",
            str(processes),
            "-P",
            "prefork",
            "-l",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"benchsuite-{tag}@%h",
        ],
        cwd=ROOT,
        env=ctx.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=die_with_parent,
    )
    low, high = int(cases * 0.1), int(cases * 0.9)
    t_low = t_high = None
    deadline = time.monotonic() + 120 + cases
    try:
        while t_high is None:
            if worker.poll() is not None:
                raise BenchError(f"celery worker exited: {log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise BenchError(f"engine drain with {processes} processes did not finish")
            done = _reached_review(tag)
            now = time.monotonic()
            if t_low is None and done >= low:
                t_low = now
            if done >= high:
                t_high = now
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
    elapsed = t_high - (t_low if t_low is not None else t_high)
    return {"cases_per_s": (high - low) / max(elapsed, 1e-6), "cases": cases}


def engine_scaling(ctx: Context) -> list[Line]:
    cases = ctx.sizes.engine_cases
    results: dict[int, list[dict[str, Any]]] = {k: [] for k in PROCESS_COUNTS}
    for n in range(1, REPEATS + 1):
        for processes in PROCESS_COUNTS:
            run = _engine_run(ctx, processes, cases, tag=f"ENG{processes}p{n}")
            results[processes].append(run)
            progress(
                f"scaling round {n}/{REPEATS}: engine with {processes} Celery process(es) "
                f"{run['cases_per_s']:,.1f} cases/s"
            )
    broker_queue_purge(ctx.broker_url)
    return [
        Line(
            f"Scaling: engine, {processes} Celery process(es)",
            median(r["cases_per_s"] for r in runs),
            "cases/s",
            "-",
            None,
            detail=f"{cases:,} cases: task step + review gate",
            runs={"rounds": runs},
        )
        for processes, runs in results.items()
    ]


def scaling_phase(ctx: Context) -> list[Line]:
    return web_scaling(ctx) + engine_scaling(ctx)
