"""Business-time arithmetic: when does an SLA that counts only opening hours end.

All arithmetic happens in UTC; each day's opening and closing times are placed in
the calendar's time zone first, so daylight-saving changes and distant zones come
out right (a 09:00-17:00 day is eight real hours on either side of a DST switch).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from routing.models import WEEKDAYS, BusinessCalendar

# A calendar with no working time would loop forever; ten years is "never".
_MAX_DAYS = 3660


def _working_day(calendar: BusinessCalendar, day: dt.date, holidays: set[str]) -> bool:
    return WEEKDAYS[day.weekday()] in calendar.weekdays and day.isoformat() not in holidays


def _window(calendar: BusinessCalendar, day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, ...]:
    opens = dt.datetime.combine(day, calendar.opens_at, tzinfo=zone).astimezone(dt.UTC)
    closes = dt.datetime.combine(day, calendar.closes_at, tzinfo=zone).astimezone(dt.UTC)
    return opens, closes


def business_add(
    calendar: BusinessCalendar | None, start: dt.datetime, duration: dt.timedelta
) -> dt.datetime:
    """The moment `duration` of business time after `start` (24x7 without a calendar).

    Time outside opening hours, on non-working days and on holidays does not count;
    a start outside opening hours begins counting at the next opening.
    """
    if calendar is None or calendar.always_open:
        return start + duration
    zone = ZoneInfo(calendar.time_zone)
    holidays = {str(day) for day in calendar.holidays or []}
    remaining = duration
    cursor = start.astimezone(dt.UTC)
    day = cursor.astimezone(zone).date()
    for _ in range(_MAX_DAYS):
        if _working_day(calendar, day, holidays):
            opens, closes = _window(calendar, day, zone)
            begin = max(cursor, opens)
            if begin < closes:
                available = closes - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
        day += dt.timedelta(days=1)
    raise ValueError(f"calendar {calendar.name} has no working time in ten years")


def business_elapsed(
    calendar: BusinessCalendar | None, start: dt.datetime, end: dt.datetime
) -> dt.timedelta:
    """Business time between two moments (zero when `end` is not after `start`)."""
    if end <= start:
        return dt.timedelta(0)
    if calendar is None or calendar.always_open:
        return end - start
    zone = ZoneInfo(calendar.time_zone)
    holidays = {str(day) for day in calendar.holidays or []}
    total = dt.timedelta(0)
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    while day <= last:
        if _working_day(calendar, day, holidays):
            opens, closes = _window(calendar, day, zone)
            begin, finish = max(start, opens), min(end, closes)
            if begin < finish:
                total += finish - begin
        day += dt.timedelta(days=1)
    return total
