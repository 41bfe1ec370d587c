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
