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


def test_the_claim_floor_sends_baseline_b_statement_with_the_reviewer_as_parameter():
    from bench.claims import CLAIM_SCRIPT, RAW_CLAIM

    pgbench_statement = CLAIM_SCRIPT.format(reviewers=32).split("\n", 1)[1]
    assert pgbench_statement.replace(":rid", "%s") == RAW_CLAIM
    assert RAW_CLAIM.count("%s") == 1 and "FOR UPDATE SKIP LOCKED" in RAW_CLAIM


def _call_floor(method, path, body=b""):
    import io

    from bench import floor

    answered = {}

    def start_response(status, headers):
        answered["status"], answered["headers"] = status, dict(headers)

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    content = b"".join(floor.application(environ, start_response))
    return answered["status"], content


def test_the_bare_intake_floor_answers_health_and_refuses_what_is_not_a_json_object(
    monkeypatch,
):
    from bench import floor

    def no_database():
        raise AssertionError("a refused request must not reach the database")

    monkeypatch.setattr(floor, "_db", no_database)
    assert _call_floor("GET", "/healthz") == ("200 OK", b'{"status": "ok"}')
    assert _call_floor("POST", "/api/v1/cases/", b"{not json")[0] == "400 Bad Request"
    assert _call_floor("POST", "/api/v1/cases/", b"[1, 2]")[0] == "400 Bad Request"
    assert _call_floor("GET", "/api/v1/cases/")[0] == "405 Method Not Allowed"


def test_the_django_floor_settings_refuse_to_load_outside_the_benchmark(monkeypatch):
    import importlib
    import sys

    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.delenv("ARBITER_BENCHMARK_FLOOR", raising=False)
    monkeypatch.delitem(sys.modules, "bench.settings_floor", raising=False)
    with pytest.raises(ImproperlyConfigured, match="benchmark only"):
        importlib.import_module("bench.settings_floor")


@pytest.mark.rabbitmq
def test_dropping_the_suite_s_queue_leaves_neither_it_nor_its_exchange_on_the_broker(settings):
    """Celery declares a direct exchange named after its default queue; a benchmark run
    that deleted only the queue left the exchange behind on a shared broker."""
    import uuid
    from typing import Any

    from amqp.exceptions import NotFound
    from kombu import Connection, Exchange, Producer, Queue

    from bench.world import broker_queue_drop

    url = settings.CELERY_BROKER_URL
    name = f"arbiter-test-benchsuite-{uuid.uuid4().hex}"
    exchange = Exchange(name, "direct", durable=False, auto_delete=False)
    try:
        with Connection(url, connect_timeout=3) as conn:
            Queue(name, exchange, routing_key=name, auto_delete=False)(
                conn.default_channel
            ).declare()
            Producer(conn.default_channel).publish(
                {"left": "over"}, exchange=exchange, routing_key=name
            )
        broker_queue_drop(url, name)
        with Connection(url, connect_timeout=3) as conn:
            with pytest.raises(NotFound):
                channel: Any = conn.channel()
                channel.queue_declare(name, passive=True)
            with pytest.raises(NotFound):
                channel = conn.channel()
                channel.exchange_declare(name, "direct", passive=True)
    finally:  # whatever happened above, nothing of this test stays on the broker
        with Connection(url, connect_timeout=3) as conn:
            channel = conn.channel()
            channel.queue_delete(name)
            channel.exchange_delete(name)
