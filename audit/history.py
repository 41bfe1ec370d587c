"""Turn django-simple-history rows into timeline entries: who changed what, when, why.

Apps with case-linked models register a timeline source built on this, e.g.
`register_timeline_source("case", lambda cid: history_entries(Case.history.filter(id=cid)))`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from audit.registry import TimelineEntry

_KIND = {"+": "created", "~": "changed", "-": "deleted"}


def history_entries(rows: Iterable[Any]) -> list[TimelineEntry]:
    """One entry per historical row, oldest first, each with the fields it changed."""
    ordered = sorted(rows, key=lambda row: (row.history_date, row.history_id))
    entries = []
    previous: dict[Any, Any] = {}
    for row in ordered:
        model = row.instance_type
        obj_key = (model, getattr(row, model._meta.pk.attname))
        before = previous.get(obj_key)
        changes: dict[str, Any] = {}
        if before is not None:
            delta = row.diff_against(before)
            changes = {c.field: {"from": c.old, "to": c.new} for c in delta.changes}
        previous[obj_key] = row
        user = row.history_user
        entries.append(
            TimelineEntry(
                at=row.history_date,
                kind="history",
                title=f"{model._meta.verbose_name} {_KIND.get(row.history_type, '?')}",
                actor=user.get_username() if user is not None else "",
                detail={"reason": row.history_change_reason or "", "changes": changes},
                order=row.history_id,
            )
        )
    return entries


def history_user(request: Any = None, **kwargs: Any) -> Any:
    """Who simple-history records as having made a change: the signed-in person, or
    nobody for API clients and the system (audit events name those)."""
    from django.contrib.auth import get_user_model

    user = getattr(request, "user", None)
    return user if isinstance(user, get_user_model()) else None


def cache_history_managers() -> None:
    """Make `Model.history` build its manager class once, not on every access.

    django-simple-history 3.13's descriptor calls `Manager.from_queryset` (which walks
    the queryset class with `inspect.getmembers`) each time `.history` is read, and its
    post_save handler reads it for every historical row written: about a sixth of an
    intake request's Python time went there. The cached class is the same class it
    would build; only the rebuilding is gone.
    """
    from simple_history.manager import HistoryDescriptor

    if getattr(HistoryDescriptor, "_arbiter_cached", False):
        return

    def __get__(self: Any, instance: Any, owner: Any) -> Any:
        manager_class = self.__dict__.get("_arbiter_manager_class")
        if manager_class is None:
            manager_class = self.manager_class.from_queryset(self.queryset_class)
            self._arbiter_manager_class = manager_class
        return manager_class(self.model, instance)

    HistoryDescriptor.__get__ = __get__
    HistoryDescriptor._arbiter_cached = True
