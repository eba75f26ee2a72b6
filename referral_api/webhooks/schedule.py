"""When to try a failed delivery again: exponential back-off with jitter over more than 24 hours.

Attempt 1 is immediate; after a failed attempt n the next one waits DELAYS[n-1], stretched by a
random 0-20 % (never shortened, so the schedule spans at least its nominal 27 h 42 min), or as long
as the receiver's `Retry-After` asks if that is longer (capped at 24 hours). After attempt
MAX_ATTEMPTS (11) the delivery is failed.
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

DELAYS = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
    timedelta(hours=8),
    timedelta(hours=12),
)
MAX_ATTEMPTS = len(DELAYS) + 1
JITTER = 0.2
MAX_RETRY_AFTER = timedelta(hours=24)
_DELTA_SECONDS = re.compile(r"[0-9]+")
_CAP_DIGITS = len(str(int(MAX_RETRY_AFTER.total_seconds())))


def backoff(attempt_count: int, *, rng: random.Random) -> timedelta | None:
    """The wait after `attempt_count` failed attempts, or None when none is left."""
    if attempt_count >= MAX_ATTEMPTS:
        return None
    base = DELAYS[attempt_count - 1]
    return base * (1 + rng.uniform(0, JITTER))


def retry_after(value: str | None, *, now: datetime) -> timedelta | None:
    """A `Retry-After` header (delta-seconds or HTTP-date) as a wait from `now`, capped; None if unusable.

    Whatever a receiver sends, this returns: delta-seconds are ASCII digits only (not "²", which
    str.isdigit() accepts), and a number longer than the cap's is the cap (no huge int, no overflow).
    """
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        digits = value.lstrip("0") or "0"
        if len(digits) > _CAP_DIGITS:
            return MAX_RETRY_AFTER
        wait = timedelta(seconds=int(digits))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None or when.tzinfo is None:
            return None
        wait = when - now
    return max(timedelta(0), min(wait, MAX_RETRY_AFTER))


def next_attempt(attempt_count: int, *, now: datetime, retry_after_header: str | None,
                 rng: random.Random) -> datetime | None:
    """When to try again after `attempt_count` failed attempts; None: the delivery has failed."""
    wait = backoff(attempt_count, rng=rng)
    if wait is None:
        return None
    asked = retry_after(retry_after_header, now=now)
    if asked is not None and asked > wait:
        wait = asked
    return now + wait


def total_span() -> timedelta:
    """The nominal time from the first to the last attempt (before jitter)."""
    return sum(DELAYS, timedelta(0))
