"""bench.vacuum's guard rails: it rewrites work items, so it runs only on PostgreSQL,
only in a database it seeded itself, and only where autovacuum runs."""

import pytest
from django.db import connection

from bench import vacuum
from bench.common import UsageError


def test_a_database_url_that_is_not_postgresql_is_refused(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "sqlite:///tmp/arbiter.sqlite3")
    with pytest.raises(UsageError, match="scratch PostgreSQL database"):
        vacuum.main(["--mode", "hot"])


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_database_it_did_not_seed_is_left_alone():
    from routing.models import WorkItem

    connection.ensure_connection()
    before = WorkItem.objects.count()
    with pytest.raises(UsageError, match="was not filled by"):
        vacuum._prepare(connection.connection, "hot")
    assert WorkItem.objects.count() == before
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'routing_workitem'")
        assert "autovacuum_vacuum_scale_factor=0.02" in cursor.fetchone()[0]


def _turn_statements(rid: int) -> list[str]:
    """The churn script's SQL statements, pgbench's meta-commands and variables resolved
    the way pgbench resolves them (:claimed from the claim's RETURNING)."""
    text = vacuum.CHURN_SCRIPT.replace(":rid", str(rid)).replace(" \\gset", ";")
    return [part.strip() for part in text.split(";") if part.strip()]


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_churn_turn_claims_the_next_item_completes_it_and_enqueues_one_like_it(alice):
    from django.core.management import call_command

    from routing.models import WorkItem

    call_command("bench_seed", items=60, open=0.5, queues=2, batch=60, stdout=None)
    waiting = WorkItem.objects.filter(state__in=["queued", "awaiting_checker"])
    first = waiting.order_by("rank_at", "id").first()
    assert first is not None
    count = waiting.count()
    statements = _turn_statements(alice.pk)
    assert [s.split()[0] for s in statements] == ["BEGIN", "UPDATE", "COMMIT", "UPDATE", "INSERT"]
    with connection.cursor() as cursor:
        cursor.execute(statements[1])
        (claimed,) = cursor.fetchone()
        for statement in statements[3:]:
            cursor.execute(statement.replace(":claimed", str(claimed)))
    assert claimed == first.pk
    first.refresh_from_db()
    assert (first.state, first.assignee_id) == ("done", alice.pk)
    assert first.decided_at is not None
    assert waiting.count() == count  # one taken, one like it enqueued
    new = WorkItem.objects.latest("id")
    assert (new.state, new.case_id, new.queue_id) == ("queued", first.case_id, first.queue_id)
