"""The benchmark suite's own arithmetic and guard rails (bench/): what it computes from
pgbench's and wrk's output, how it prints, and that bad usage exits 2."""

import pytest

from bench import run
from bench.common import Line, parse_pgbench_log, percentile, table


def test_percentile_is_the_nearest_rank():
    sample = list(range(1, 101))
    assert percentile(sample, 99) == 99
    assert percentile(sample, 50) == 50
    assert percentile([7.0], 99) == 7.0


def test_pgbench_log_latencies_are_read_in_milliseconds():
    log = ["0 1 1534 0 1700000000 123456", "1 1 980 0 1700000000 123999", ""]
    assert parse_pgbench_log(log) == [1.534, 0.98]


def test_a_line_without_an_explicit_ratio_divides_by_its_baseline():
    line = Line("Claim", 60.0, "claims/s", ">= 0.50 x (b)", False, baseline=6000.0)
    assert line.ratio == pytest.approx(0.01)
    assert line.verdict == "FAIL"


def test_the_table_prints_one_row_per_line_with_its_verdict():
    lines = [
        Line("Intake", 30.0, "req/s", ">= 0.15 x (a)", False, baseline=8000.0, ratio=0.00375),
        Line("Scaling", 12.5, "cases/s", "-", None),
    ]
    printed = table(lines).splitlines()
    assert len(printed) == 4
    assert "FAIL" in printed[2] and "0.0037" in printed[2] and "8,000 req/s" in printed[2]
    assert "info" in printed[3]


def test_without_database_url_the_suite_exits_2(monkeypatch, capsys):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(run, "require_tools", lambda: None)
    assert run.main(["--quick"]) == 2
    assert "DATABASE_URL is not set" in capsys.readouterr().err


def test_a_sqlite_url_is_refused_with_exit_2(monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", "sqlite:///var/arbiter.sqlite3")
    monkeypatch.setattr(run, "require_tools", lambda: None)
    assert run.main([]) == 2
    assert "PostgreSQL only" in capsys.readouterr().err


def test_an_unknown_phase_is_bad_usage(capsys):
    assert run.main(["--only", "intake,warp"]) == 2
    assert "unknown phase(s) warp" in capsys.readouterr().err


def test_quick_shrinks_every_size_and_full_keeps_the_issues():
    quick = run.sizes_from(run.parse_args(["--quick"]))
    full = run.sizes_from(run.parse_args([]))
    assert full.claims == 100_000 and full.dashboard_items == 1_000_000
    assert full.churn_seconds == 600
    assert quick.claims < full.claims and quick.churn_seconds < full.churn_seconds
