"""google.protobuf.Timestamp to and from datetime, with one rule for bad input.

A time refnet accepts is one it can also show in Vietnam time (UTC+7): from 0001-01-01T00:00:00Z to
9999-12-31T16:59:59.999999999Z, with nanos from 0 to 999,999,999. Anything else (a second before year 1, the
last seven hours of year 9999, whose Vietnamese wall-clock time would overflow, negative nanos, nanos of a
whole second or more) is ``InvalidArgument`` naming the field: on a request that is the caller's mistake, on a
consumed event a record to dead-letter, never an ``OverflowError`` deep in a handler.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, overload

from google.protobuf.timestamp_pb2 import Timestamp

from refnet_platform.errors import InvalidArgument

VIETNAM_OFFSET = timedelta(hours=7)
# 0001-01-01T00:00:00Z: the first second of both Timestamp's range and datetime's.
MIN_SECONDS = -62_135_596_800
# 9999-12-31T16:59:59Z: the last second whose Vietnam time (23:59:59 on 31 December 9999) is still a datetime.
MAX_SECONDS = 253_402_300_799 - int(VIETNAM_OFFSET.total_seconds())
MAX_NANOS = 999_999_999
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 16, 59, 59, 999_999, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_timestamp(message: Any, field_name: str, path: str | None = None) -> datetime | None:
    """The aware UTC datetime in ``message.<field_name>``; None when the field is not set. ``path`` is how the
    field is named to the caller when it is nested (``needs[0].consent.expires_at``); the field's own name if
    not given. Sub-microsecond nanos are dropped, as datetime cannot hold them."""
    if not message.HasField(field_name):
        return None
    return timestamp_to_datetime(getattr(message, field_name), path or field_name)


def timestamp_to_datetime(stamp: Timestamp, field_name: str) -> datetime:
    """``stamp`` as an aware UTC datetime, or InvalidArgument naming ``field_name`` if it is out of range."""
    if not 0 <= stamp.nanos <= MAX_NANOS:
        raise InvalidArgument(field_name, f"nanos must be from 0 to {MAX_NANOS:,}, got {stamp.nanos:,}")
    if not MIN_SECONDS <= stamp.seconds <= MAX_SECONDS:
        raise InvalidArgument(field_name, f"is out of range: give a time from {EARLIEST:%Y-%m-%dT%H:%M:%SZ} "
                                          f"to {LATEST:%Y-%m-%dT%H:%M:%SZ}")
    return EARLIEST + timedelta(seconds=stamp.seconds - MIN_SECONDS, microseconds=stamp.nanos // 1000)


@overload
def to_timestamp(value: datetime) -> Timestamp: ...


@overload
def to_timestamp(value: None) -> None: ...


def to_timestamp(value: datetime | None) -> Timestamp | None:
    """``value`` as a Timestamp (a naive datetime is taken as UTC); None stays None, so an optional time is left
    unset."""
    if value is None:
        return None
    # Whole seconds and microseconds from the epoch by datetime arithmetic: the same Timestamp as FromDatetime
    # gives, at a third of its cost (every event carries a few).
    since = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)) - EPOCH
    return Timestamp(seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000)
