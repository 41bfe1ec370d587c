"""What every part of the benchmark suite shares: the database it owns, progress lines,
statistics, pgbench, the result lines and the table they print as."""

from __future__ import annotations

import hashlib
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent
# The suite's own database on the DATABASE_URL server; created and dropped by each run.
# (bench/audit_verify.py uses arbiter_bench, the test suite test_arbiter.)
BENCH_DB = "arbiter_benchsuite"
# The Celery queue the suite's web and worker processes share, apart from anyone else's
# on the same broker; purged and deleted at the end.
CELERY_QUEUE = "arbiter-benchsuite"
REPEATS = 3


class UsageError(Exception):
    """Bad arguments or environment: exit 2 with the message."""


class BenchError(Exception):
    """A measurement could not be taken (a process died, the data came out wrong)."""


# --- Progress ----------------------------------------------------------------------

_STARTED = time.monotonic()


def progress(message: str) -> None:
    """A progress line on stderr, stamped with the time since the suite started."""
    print(f"[{time.monotonic() - _STARTED:7.1f} s] {message}", file=sys.stderr, flush=True)


# --- Statistics --------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0-100) of a non-empty sample."""
    if not values:
        raise ValueError("percentile of an empty sample")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


# --- The database server ------------------------------------------------------------


def postgres_url(raw: str | None, *, database: str = BENCH_DB) -> SplitResult:
    """The DATABASE_URL server, refused unless it is PostgreSQL. `database` is the one
    the caller will create there (named in the message)."""
    if not raw:
        raise UsageError(
            "DATABASE_URL is not set. Point it at PostgreSQL, e.g. "
            "DATABASE_URL=postgres://postgres@127.0.0.1:5432/arbiter (the benchmark works "
            f"in its own database, {database}, on that server, and drops it at the end)."
        )
    parts = urlsplit(raw)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise UsageError(
            f"DATABASE_URL has scheme {parts.scheme or '(none)'!r}: the benchmarks measure "
            "PostgreSQL only; use postgres://USER@HOST:PORT/DBNAME."
        )
    return parts


def with_database(parts: SplitResult, name: str) -> str:
    return urlunsplit(parts._replace(path="/" + name))


def admin_connect(parts: SplitResult, name: str = "") -> psycopg.Connection[Any]:
    """A connection for CREATE/DROP DATABASE: the maintenance database, else the caller's.
    `name` becomes its application_name, which a second run shows when it is refused."""
    options: dict[str, Any] = {"application_name": name} if name else {}
    try:
        return psycopg.connect(with_database(parts, "postgres"), autocommit=True, **options)
    except psycopg.OperationalError:
        return psycopg.connect(urlunsplit(parts), autocommit=True, **options)


# Two runs against one server would drop each other's database: the first holds a
# session lock keyed by the database's name (on its admin connection) until it ends,
# and a second one refuses to start.
def _lock_key(database: str) -> int:
    return int.from_bytes(hashlib.sha256(database.encode()).digest()[:8], "big", signed=True)


def lock_server(
    parts: SplitResult, run: str, *, database: str = BENCH_DB
) -> psycopg.Connection[Any]:
    """Hold the server's lock for `database` until the connection closes. `run` says
    which run holds it (shown to a run that is refused, so people on a shared machine
    can tell whose it is and how long it has been going)."""
    key = _lock_key(database)
    name = f"arbiter {run}, pid {os.getpid()}, started {time.strftime('%H:%M')}"
    admin = admin_connect(parts, name[:63])
    row = admin.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
    if not row or not row[0]:
        # A bigint advisory key shows in pg_locks as two oids: its high and low halves.
        holder = admin.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid",
            [(key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF],
        ).fetchone()
        admin.close()
        raise UsageError(
            f"another benchmark run is using {database} on that server"
            + (f" ({holder[0]})" if holder and holder[0] else "")
            + "; wait for it to finish."
        )
    return admin


def recreate_database(admin: psycopg.Connection[Any], database: str = BENCH_DB) -> None:
    drop_database(admin, database)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def drop_database(admin: psycopg.Connection[Any], database: str = BENCH_DB) -> None:
    admin.execute(
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
    )


def server_facts(url: str) -> dict[str, str]:
    """Server settings that move the figures, for the record."""
    names = (
        "server_version",
        "max_connections",
        "shared_buffers",
        "synchronous_commit",
        "fsync",
        "autovacuum",
        "work_mem",
    )
    with psycopg.connect(url, autocommit=True) as conn:
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in names}  # type: ignore[index]


# --- pgbench ------------------------------------------------------------------------

PGBENCH = "pgbench"
WRK = "wrk"


def require_tools() -> None:
    missing = [tool for tool in (PGBENCH, WRK) if shutil.which(tool) is None]
    if missing:
        raise UsageError(
            f"{' and '.join(missing)} not found on PATH. The baselines come from pgbench and "
            "the HTTP load from wrk; on Debian or Ubuntu: "
            "sudo apt-get install -y postgresql-client wrk "
            "(pgbench is in postgresql-client-15 or newer; macOS: brew install postgresql wrk)."
        )
    if not (VENV_BIN / "gunicorn").exists():
        raise UsageError(f"gunicorn not found next to {sys.executable}; run `make install`.")


def pg_client(parts: SplitResult, dbname: str) -> tuple[list[str], dict[str, str]]:
    """Connection arguments and environment for the PostgreSQL command-line clients."""
    args = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432)]
    if parts.username:
        args += ["-U", unquote(parts.username)]
    env = dict(os.environ)
    if parts.password:
        env["PGPASSWORD"] = unquote(parts.password)
    return [*args, dbname], env


@dataclass
class PgbenchResult:
    tps: float
    transactions: int
    p50_ms: float
    p99_ms: float


_TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")


def parse_pgbench_log(lines: Iterable[str]) -> list[float]:
    """Latencies in ms from pgbench's per-transaction log (-l): the third field, in µs."""
    latencies = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 3:
            latencies.append(int(fields[2]) / 1000)
    return latencies


def run_pgbench(
    parts: SplitResult,
    *,
    script: str,
    clients: int,
    threads: int,
    workdir: Path,
    tag: str,
    seconds: int | None = None,
    transactions_per_client: int | None = None,
) -> PgbenchResult:
    """Run a custom pgbench script on the suite's database with a per-transaction log."""
    script_path = workdir / f"{tag}.sql"
    script_path.write_text(script)
    prefix = workdir / f"{tag}-log"
    for old in workdir.glob(f"{prefix.name}.*"):
        old.unlink()
    length = ["-T", str(seconds)] if seconds else ["-t", str(transactions_per_client)]
    conn_args, env = pg_client(parts, BENCH_DB)
    command = [
        PGBENCH,
        "-n",  # no vacuum of pgbench's own tables: there are none
        "-f",
        str(script_path),
        "-c",
        str(clients),
        "-j",
        str(threads),
        *length,
        "-l",
        f"--log-prefix={prefix}",
        *conn_args,
    ]
    done = subprocess.run(  # noqa: S603 (our own command line)
        command, env=env, capture_output=True, text=True, check=False, cwd=workdir
    )
    if done.returncode != 0:
        raise BenchError(f"pgbench {tag} failed ({done.returncode}): {done.stderr.strip()}")
    match = _TPS.search(done.stdout)
    if not match:
        raise BenchError(f"pgbench {tag}: no tps in its output:\n{done.stdout}")
    latencies: list[float] = []
    for log in workdir.glob(f"{prefix.name}.*"):
        with log.open() as lines:
            latencies += parse_pgbench_log(lines)
    if not latencies:
        raise BenchError(f"pgbench {tag} wrote no transaction log")
    return PgbenchResult(
        tps=float(match.group(1)),
        transactions=len(latencies),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
    )


# --- Processes ----------------------------------------------------------------------


def die_with_parent() -> None:
    """preexec_fn for the servers the suite starts: Linux sends them SIGTERM if the suite
    dies without stopping them (killed with SIGKILL), so none is left serving."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: stopped in the usual way only
        pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _proc_stat(pid: str) -> tuple[str, int, int, int] | None:
    """(command name, parent pid, CPU ticks used, start time) of a process, None once it
    is gone. The start time tells a process from a later one with the same pid (names
    change: kernel workers rename themselves)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2 :].split()
    return name, int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[19])


class CpuSampler:
    """Where the machine's CPU went between start() and stop(), by process group:
    ours (the children of the given parents, e.g. gunicorn's web workers), PostgreSQL
    (every backend: other databases' too), the load generator, RabbitMQ, and everything
    else (other users of the machine included).

    Children of this process that exited in between (wrk, or the reviewer processes)
    are counted from getrusage, as /proc forgets them on exit: as `reaped`."""

    def __init__(
        self,
        parents: Sequence[int] = (),
        label: str = "web workers",
        reaped: str = "load generator",
    ) -> None:
        self.parents = {int(pid) for pid in parents}
        self.label = label
        self.reaped = reaped
        self._before: dict[str, tuple[str, int, int, int]] = {}
        self._wall = 0.0
        self._children = 0.0
        self._busy = 0

    def _snapshot(self) -> dict[str, tuple[str, int, int, int]]:
        found = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (stat := _proc_stat(entry.name)) is not None:
                found[entry.name] = stat
        return found

    @staticmethod
    def _reaped_children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    @staticmethod
    def _busy_ticks() -> int:
        """All cores' non-idle ticks since boot, from /proc/stat."""
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields) - fields[3] - fields[4]  # minus idle and iowait

    def start(self) -> None:
        self._busy = self._busy_ticks()
        self._before = self._snapshot()
        self._children = self._reaped_children()
        self._wall = time.monotonic()

    def stop(self) -> dict[str, float]:
        """Share of all cores' time per group, in percent (sums to at most 100)."""
        after = self._snapshot()
        wall = time.monotonic() - self._wall
        ticks = os.sysconf("SC_CLK_TCK")
        capacity = wall * ticks * (os.cpu_count() or 1)
        groups: dict[str, float] = {}
        for pid, (name, parent, used, began) in after.items():
            before = self._before.get(pid)
            delta = used - (before[2] if before and before[3] == began else 0)
            if parent in self.parents or (int(pid) in self.parents and pid != str(os.getpid())):
                group = self.label
            elif name.startswith("postgres"):
                group = "postgresql"
            elif name in {"wrk", "pgbench"}:
                group = "load generator"
            elif name.startswith("beam"):
                group = "rabbitmq"
            elif name.startswith("celery") or "celery" in name:
                group = "celery"
            else:
                group = "other"
            groups[group] = groups.get(group, 0.0) + delta
        reaped = (self._reaped_children() - self._children) * ticks
        groups[self.reaped] = groups.get(self.reaped, 0.0) + reaped
        # Processes that ended in between (a database connection recycled after
        # DB_CONN_MAX_AGE, other users' short-lived commands) are in no group above.
        busy = self._busy_ticks() - self._busy
        groups["ended processes"] = max(0.0, busy - sum(groups.values()))
        return {
            group: round(100 * used / capacity, 1) if capacity else 0.0
            for group, used in sorted(groups.items())
        }


# --- Result lines --------------------------------------------------------------------


@dataclass
class Line:
    """One line of the table: a figure, its baseline, their ratio, the goal, the verdict.

    `ratio` is the median of the per-round ratios where rounds were interleaved (each
    round's pair was measured minutes apart at most), else figure / baseline.
    `passed` is None for lines that only inform (scaling figures).
    """

    name: str
    value: float | None
    unit: str
    goal: str
    passed: bool | None
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    detail: str = ""
    runs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ratio is None and self.value is not None and self.baseline:
            self.ratio = self.value / self.baseline

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "FAIL"


def floor_line(
    rounds: Sequence[dict[str, Any]],
    key: str,
    *,
    name: str,
    unit: str,
    baseline_name: str,
    goal: str,
    detail: str,
) -> Line:
    """A floor (rounds[k][key]) next to its baseline (rounds[k]["baseline"]), both with
    `tps` and `p99_ms`: the most anything built on that much of the path reaches on the
    machine. It informs; it has no goal of its own."""
    tps = [r[key]["tps"] for r in rounds]
    base_tps = [r["baseline"]["tps"] for r in rounds]
    p99 = median(r[key]["p99_ms"] for r in rounds)
    base_p99 = median(r["baseline"]["p99_ms"] for r in rounds)
    return Line(
        name,
        median(tps),
        unit,
        f"info; {goal}",
        None,
        baseline=median(base_tps),
        baseline_name=baseline_name,
        ratio=median(a / b for a, b in zip(tps, base_tps, strict=True)),
        detail=f"{detail}; p99 {p99:.1f} ms = {p99 / base_p99:.1f}x {baseline_name} p99",
    )


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in {"req/s", "claims/s", "events/s", "cases/s"}:
        return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"
    if unit == "ms":
        return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"
    if unit == "s":
        return f"{value:,.2f} s"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "rows":
        return f"{value:,.0f} rows"
    return f"{value:,.0f} {unit}".rstrip()


def _ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.4f}" if ratio < 0.1 else f"{ratio:.2f}"


def table(lines: Sequence[Line]) -> str:
    header = ("line", "figure", "baseline", "ratio", "goal", "result", "detail")
    rows = [
        (
            line.name,
            fmt(line.value, line.unit),
            (
                fmt(line.baseline, line.unit)
                + (f" {line.baseline_name}" if line.baseline_name else "")
            )
            if line.baseline is not None
            else "-",
            _ratio(line.ratio),
            line.goal,
            line.verdict,
            line.detail,
        )
        for line in lines
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def render(row: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), rule, *map(render, rows)])
