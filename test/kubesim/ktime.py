"""Time stamps, in one place: every kubesim module writes and reads RFC 3339 times through here.

The API server's metav1.Time is whole seconds in UTC with a "Z" suffix ("2024-05-01T10:05:12Z");
that is the only format kubesim writes. Two readers, because callers need two answers:
parse_rfc3339() gives seconds since the epoch (0.0 when unreadable) for timers and ordering, and
parse_time() gives an aware datetime (None when unreadable, fractions kept) for schema validation
and kubectl's AGE column.
"""

import calendar
import datetime
import re
import time

_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?([+-]\d\d:\d\d)$")


def now_rfc3339(t=None):
    """RFC 3339 stamp of epoch seconds t (now when None): whole seconds, UTC, "Z"."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def parse_rfc3339(s):
    """Seconds since the epoch of a UTC RFC 3339 stamp, or 0.0 when it cannot be read. calendar.timegm
    reads the fields as UTC; mktime() - timezone was an hour off whenever the local zone was on
    daylight-saving time."""
    try:
        return float(calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")))
    except (TypeError, ValueError):
        return 0.0


def parse_time(text):
    """RFC3339 (with or without fractions) -> aware datetime, or None when unparsable."""
    if not isinstance(text, str) or not text:
        return None
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    m = _TIME_RE.match(t)
    if not m:
        return None
    try:
        base = datetime.datetime.strptime(m.group(1) + m.group(3), "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None
    if m.group(2):
        base += datetime.timedelta(microseconds=int((m.group(2)[1:] + "000000")[:6]))
    return base


def utc_now():
    """Now as an aware UTC datetime (what parse_time() returns, for differences)."""
    return datetime.datetime.now(datetime.timezone.utc)
