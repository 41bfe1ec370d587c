"""SQL the ORM builds once per key, for the statements of hot paths (a claim, a case
submission) that run on every call but whose SQL is a pure function of a few values.

Building a statement with the ORM costs more Python than PostgreSQL spends running
most of them (0.5 to 1 ms each on the 2-core benchmark machine). The SQL and its
parameters are kept per key, in one bounded cache per process; the statement itself
runs every time, so what it reads is always current. A key must name everything the
SQL depends on: two calls with one key must build the very same statement.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)

_SQL: OrderedDict[tuple[Any, ...], tuple[str, tuple[Any, ...]]] = OrderedDict()
SQL_MAX = 1024
_SQL_LOCK = threading.Lock()


def cached_sql(
    key: tuple[Any, ...], build: Callable[[], tuple[str, tuple[Any, ...]]]
) -> tuple[str, tuple[Any, ...]]:
    """The (sql, params) `build()` returns for `key`, built on the key's first use."""
    cached = _SQL.get(key)
    if cached is not None:
        return cached
    built = build()
    with _SQL_LOCK:
        _SQL[key] = built
        while len(_SQL) > SQL_MAX:
            _SQL.popitem(last=False)
    return built


def raw_rows(
    model: type[M], key: tuple[Any, ...], queryset: Callable[[], QuerySet[Any]]
) -> list[M]:
    """The rows of `queryset()`, a query of `model`'s own columns (annotations allowed;
    no select_related, whose joined columns a raw query cannot place), its SQL built
    once per `key`."""

    def build() -> tuple[str, tuple[Any, ...]]:
        sql, params = queryset().query.sql_with_params()
        return sql, tuple(params)

    sql, params = cached_sql(key, build)
    return list(model._default_manager.raw(sql, params))


def first_row(
    model: type[M], key: tuple[Any, ...], queryset: Callable[[], QuerySet[Any]]
) -> M | None:
    """`queryset().first()` with its SQL built once per `key` (queryset() must be
    ordered where more than one row can match)."""
    rows = raw_rows(model, key, lambda: queryset()[:1])
    return rows[0] if rows else None
