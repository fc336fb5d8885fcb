"""One rule for a Timestamp on every API and event: in range (and showable in Vietnam time) or InvalidArgument
naming the field; and the clock every service is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.shelter.v1 import events_pb2 as shelter_events
from refnet_platform.clock import ManualClock, system_clock
from refnet_platform.errors import InvalidArgument
from refnet_platform.timestamps import (
    EARLIEST,
    LATEST,
    MAX_SECONDS,
    MIN_SECONDS,
    from_timestamp,
    timestamp_to_datetime,
    to_timestamp,
)

VIETNAM = timezone(timedelta(hours=7))
FIRST_SECOND_OF_YEAR_1 = -62_135_596_800
LAST_SECOND_OF_YEAR_9999 = 253_402_300_799


def request(seconds: int, nanos: int = 0) -> intake_pb.RegisterCaseRequest:
    message = intake_pb.RegisterCaseRequest()
    message.recorded_at.seconds, message.recorded_at.nanos = seconds, nanos
    return message


def refused(message: object, field_name: str = "recorded_at", path: str | None = None) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as raised:
        from_timestamp(message, field_name, path)
    return raised.value


def test_an_unset_time_is_none_and_a_set_one_an_aware_utc_datetime() -> None:
    assert from_timestamp(intake_pb.RegisterCaseRequest(), "recorded_at") is None
    at = datetime(2026, 3, 3, 3, 0, 0, 123_456, tzinfo=UTC)
    got = from_timestamp(intake_pb.RegisterCaseRequest(recorded_at=to_timestamp(at)), "recorded_at")
    assert got == at and got.tzinfo is UTC


def test_the_first_second_of_year_1_is_in_range_and_the_one_before_it_is_not() -> None:
    assert MIN_SECONDS == FIRST_SECOND_OF_YEAR_1
    first = from_timestamp(request(FIRST_SECOND_OF_YEAR_1), "recorded_at")
    assert first == EARLIEST == datetime(1, 1, 1, tzinfo=UTC)
    assert first is not None and first.astimezone(VIETNAM) == datetime(1, 1, 1, 7, 0, tzinfo=VIETNAM)
    problem = refused(request(FIRST_SECOND_OF_YEAR_1 - 1))
    assert problem.field == "recorded_at" and "out of range" in str(problem)


def test_the_last_hours_of_year_9999_are_refused_as_vietnam_time_cannot_show_them() -> None:
    # 9999-12-31T16:59:59.999999999Z is 23:59:59 on 31 December in Vietnam: the last time accepted.
    last = from_timestamp(request(MAX_SECONDS, 999_999_999), "recorded_at")
    assert last == LATEST == datetime(9999, 12, 31, 16, 59, 59, 999_999, tzinfo=UTC)
    assert last is not None and last.astimezone(VIETNAM) == datetime(9999, 12, 31, 23, 59, 59, 999_999, VIETNAM)
    for seconds in (MAX_SECONDS + 1, LAST_SECOND_OF_YEAR_9999, LAST_SECOND_OF_YEAR_9999 + 1, 2**62):
        assert refused(request(seconds)).field == "recorded_at"


@pytest.mark.parametrize("nanos", [-1, -999_999_999, 1_000_000_000, 2**31 - 1])
def test_nanos_outside_a_second_are_refused(nanos: int) -> None:
    problem = refused(request(0, nanos))
    assert problem.field == "recorded_at" and "nanos" in str(problem)


def test_a_nested_field_is_named_by_its_path() -> None:
    need = intake_pb.Need()
    need.consent.expires_at.seconds = LAST_SECOND_OF_YEAR_9999
    assert refused(need.consent, "expires_at", "needs[2].consent.expires_at").field == "needs[2].consent.expires_at"


def test_a_consumed_event_names_its_field_too() -> None:
    reserve = shelter_events.ReserveBed(referral_id="r1")
    reserve.hold_until.nanos = -1
    assert refused(reserve, "hold_until").field == "hold_until"


@given(st.integers(MIN_SECONDS, MAX_SECONDS), st.integers(0, 999_999_999))
def test_every_time_in_range_converts_as_protobuf_does_and_shows_in_vietnam_time(seconds: int, nanos: int) -> None:
    stamp = Timestamp(seconds=seconds, nanos=nanos)
    got = timestamp_to_datetime(stamp, "t")
    assert got == stamp.ToDatetime(tzinfo=UTC)
    assert got.astimezone(VIETNAM).tzinfo is not None  # no OverflowError
    assert to_timestamp(got) == Timestamp(seconds=seconds, nanos=nanos // 1000 * 1000)


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=st.sampled_from([None, UTC, VIETNAM, timezone(timedelta(hours=-9, minutes=-30))])))
def test_to_timestamp_gives_what_protobufs_own_conversion_gives(value: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(value.astimezone(UTC) if value.tzinfo is not None else value)
    assert to_timestamp(value) == expected


def test_to_timestamp_keeps_the_instant_and_leaves_none_unset() -> None:
    at = datetime(2026, 3, 3, 10, 0, tzinfo=VIETNAM)
    assert to_timestamp(at) == to_timestamp(at.astimezone(UTC)) == Timestamp(seconds=int(at.timestamp()))
    assert to_timestamp(datetime(2026, 3, 3, 3, 0)) == to_timestamp(datetime(2026, 3, 3, 3, 0, tzinfo=UTC))
    assert to_timestamp(None) is None
    assert not intake_pb.Consent(expires_at=to_timestamp(None)).HasField("expires_at")


def test_the_system_clock_tells_aware_utc_time() -> None:
    before = datetime.now(UTC)
    now = system_clock()
    assert now.tzinfo is UTC and before <= now <= datetime.now(UTC)


def test_a_manual_clock_stands_still_until_moved() -> None:
    clock = ManualClock(datetime(2026, 3, 3, 10, 0, tzinfo=VIETNAM))
    assert clock() == clock() == datetime(2026, 3, 3, 3, 0, tzinfo=UTC) and clock().tzinfo is UTC
    assert clock.advance(minutes=90) == datetime(2026, 3, 3, 4, 30, tzinfo=UTC)
    assert clock.advance(timedelta(days=1), hours=1) == datetime(2026, 3, 4, 5, 30, tzinfo=UTC)
    clock.set(datetime(2030, 1, 1, tzinfo=UTC))
    assert clock() == datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="aware"):
        ManualClock(datetime(2026, 3, 3))
