"""When a cron schedule fires (pure): the firing due now, and the next one.

Like CronJob: a firing missed while the operator was away is made up once (the most recent), never
once per missed time, and the schedule reads in its time zone (daylight saving included).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from ludus.api.continuous import parse_schedule, parse_time_zone

# Past this many missed firings the schedule starts again from now (CronJob's own limit is 100).
MAX_MISSED: Final = 100


def _in_zone(moment: datetime, zone: str | None) -> datetime:
    return moment.astimezone(parse_time_zone(zone or "UTC"))


def next_after(schedule: str, zone: str | None, after: datetime) -> datetime:
    """The first firing strictly after `after`, in UTC."""
    cron = parse_schedule(schedule)
    cron.set_current(_in_zone(after, zone), force=True)
    nxt: datetime = cron.get_next(datetime)
    return nxt.astimezone(UTC)


def due(schedule: str, zone: str | None, since: datetime, now: datetime) -> tuple[datetime | None, datetime]:
    """(the most recent firing in (since, now], or None; the first firing after now)."""
    fire: datetime | None = None
    moment = since
    for _ in range(MAX_MISSED):
        nxt = next_after(schedule, zone, moment)
        if nxt > now:
            return fire, nxt
        fire, moment = nxt, nxt
    # Too many missed: fire once for the latest, as if it had just been missed.
    latest_next = next_after(schedule, zone, now)
    return fire, latest_next
