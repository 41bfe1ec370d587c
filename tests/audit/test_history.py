import pytest
from django.contrib.auth import get_user_model

from audit.history import history_entries

pytestmark = pytest.mark.django_db


def test_history_rows_become_timeline_entries_with_who_why_and_what(alice, adam):
    alice.first_name = "Alicia"
    alice._change_reason = "name corrected"
    alice.save()
    alice.is_active = False
    alice._change_reason = "left the team"
    alice.save()
    # Who: set as simple-history's middleware would for a web request.
    latest = alice.history.latest()
    latest.history_user = adam
    latest.save()

    history = get_user_model().history  # type: ignore[attr-defined]
    entries = history_entries(history.filter(id=alice.pk))

    assert [e.title for e in entries] == ["user created", "user changed", "user changed"]
    assert entries[1].detail == {
        "reason": "name corrected",
        "changes": {"first_name": {"from": "Alice", "to": "Alicia"}},
    }
    assert entries[2].detail["changes"] == {"is_active": {"from": True, "to": False}}
    assert entries[2].actor == "adam"
    assert entries[0].at <= entries[1].at <= entries[2].at
