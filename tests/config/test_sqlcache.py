"""config.sqlcache: SQL built once per key, in a bounded cache; the rows read afresh."""

import pytest

from config import sqlcache


def test_sql_is_built_once_per_key_and_the_oldest_keys_go_past_the_bound(monkeypatch):
    monkeypatch.setattr(sqlcache, "_SQL", type(sqlcache._SQL)())
    monkeypatch.setattr(sqlcache, "SQL_MAX", 2)
    built = []

    def build(n):
        def run():
            built.append(n)
            return f"SELECT {n}", ()

        return run

    assert sqlcache.cached_sql(("k", 1), build(1)) == ("SELECT 1", ())
    assert sqlcache.cached_sql(("k", 1), build(99)) == ("SELECT 1", ())  # kept, not rebuilt
    sqlcache.cached_sql(("k", 2), build(2))
    sqlcache.cached_sql(("k", 3), build(3))  # past the bound: ("k", 1) goes
    assert list(sqlcache._SQL) == [("k", 2), ("k", 3)]
    assert sqlcache.cached_sql(("k", 1), build(4)) == ("SELECT 4", ())
    assert built == [1, 2, 3, 4]


@pytest.mark.django_db
def test_first_row_runs_the_kept_statement_every_time():
    from django.contrib.auth.models import Group

    def named(name):
        return lambda: Group.objects.filter(name=name).order_by("pk")

    assert sqlcache.first_row(Group, ("test group", "ops"), named("ops")) is None
    group = Group.objects.create(name="ops")
    assert sqlcache.first_row(Group, ("test group", "ops"), named("ops")) == group
    assert sqlcache.raw_rows(Group, ("test groups", "ops"), named("ops")) == [group]
