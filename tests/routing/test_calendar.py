import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from routing.calendar import business_add, business_elapsed
from routing.models import BusinessCalendar

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOURS = dt.timedelta(hours=1)


def office(**overrides) -> BusinessCalendar:
    values = {
        "name": "office",
        "time_zone": "UTC",
        "weekdays": ["mon", "tue", "wed", "thu", "fri"],
        "opens_at": dt.time(9),
        "closes_at": dt.time(17),
        "holidays": [],
    }
    values.update(overrides)
    return BusinessCalendar(**values)


def test_four_hours_from_friday_afternoon_end_on_monday_noon():
    friday_4pm = dt.datetime(2026, 11, 27, 16, tzinfo=UTC)
    assert friday_4pm.strftime("%a") == "Fri"
    assert business_add(office(), friday_4pm, 4 * HOURS) == dt.datetime(
        2026, 11, 30, 12, tzinfo=UTC
    )


def test_a_start_outside_hours_begins_at_the_next_opening():
    saturday = dt.datetime(2026, 11, 28, 11, tzinfo=UTC)
    assert business_add(office(), saturday, 2 * HOURS) == dt.datetime(2026, 11, 30, 11, tzinfo=UTC)
    early_tuesday = dt.datetime(2026, 12, 1, 6, tzinfo=UTC)
    assert business_add(office(), early_tuesday, HOURS) == dt.datetime(2026, 12, 1, 10, tzinfo=UTC)


def test_exactly_the_rest_of_the_day_ends_at_closing_time():
    thursday_1pm = dt.datetime(2026, 11, 26, 13, tzinfo=UTC)
    assert business_add(office(), thursday_1pm, 4 * HOURS) == dt.datetime(
        2026, 11, 26, 17, tzinfo=UTC
    )


def test_holidays_are_skipped():
    calendar = office(holidays=["2026-11-30", "2026-12-01"])
    friday_4pm = dt.datetime(2026, 11, 27, 16, tzinfo=UTC)
    assert business_add(calendar, friday_4pm, 4 * HOURS) == dt.datetime(2026, 12, 2, 12, tzinfo=UTC)


def test_opening_hours_are_those_of_the_calendars_time_zone():
    berlin = office(time_zone="Europe/Berlin")
    # 16:00 in Berlin on a Friday in winter is 15:00 UTC; 4 business hours end Monday 12:00 Berlin.
    start = dt.datetime(2026, 11, 27, 16, tzinfo=BERLIN)
    due = business_add(berlin, start, 4 * HOURS)
    assert due == dt.datetime(2026, 11, 30, 12, tzinfo=BERLIN)
    assert due.astimezone(UTC) == dt.datetime(2026, 11, 30, 11, tzinfo=UTC)


def test_a_daylight_saving_switch_keeps_eight_real_hours_a_day():
    new_york = office(time_zone="America/New_York")
    # Clocks go back on Sunday 2026-11-01; Friday 16:00 EDT + 4 h -> Monday 12:00 EST.
    start = dt.datetime(2026, 10, 30, 16, tzinfo=NEW_YORK)
    due = business_add(new_york, start, 4 * HOURS)
    assert due == dt.datetime(2026, 11, 2, 12, tzinfo=NEW_YORK)
    assert due.astimezone(UTC) == dt.datetime(2026, 11, 2, 17, tzinfo=UTC)


def test_around_the_clock_and_no_calendar_count_every_hour():
    saturday = dt.datetime(2026, 11, 28, 23, tzinfo=UTC)
    assert business_add(None, saturday, 4 * HOURS) == saturday + 4 * HOURS
    assert business_add(office(always_open=True), saturday, 4 * HOURS) == saturday + 4 * HOURS


def test_elapsed_business_time_is_the_inverse_of_adding_it():
    calendar = office(holidays=["2026-12-01"], time_zone="Europe/Berlin")
    start = dt.datetime(2026, 11, 27, 16, 30, tzinfo=BERLIN)
    for hours in (0.5, 4, 8, 9, 30):
        due = business_add(calendar, start, hours * HOURS)
        assert business_elapsed(calendar, start, due) == hours * HOURS
    assert business_elapsed(calendar, start, start - HOURS) == dt.timedelta(0)


def test_a_calendar_with_no_working_time_is_refused():
    with pytest.raises(ValidationError) as refused:
        office(weekdays=[]).clean()
    assert "weekdays" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        office(opens_at=dt.time(17), closes_at=dt.time(9)).clean()
    assert "closes_at" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        office(time_zone="Mars/Olympus").clean()
    assert "time_zone" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        office(holidays=["25/12/2026"]).clean()
    assert "holidays" in refused.value.message_dict
