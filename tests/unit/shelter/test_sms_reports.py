"""A text from a phone on a shelter's staff record, through shelter's handlers (SQLite file, no network)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from refnet.shelter.v1 import events_pb2
from refnet_platform.caller import Role, machine
from refnet_platform.errors import NotFound, PermissionDenied
from refnet_platform.vocabulary import TargetGroup
from shelter.domain import commands
from shelter.domain.model import ReservationStatus, SmsReportProblem, StaffPhone, matches_reference

WOMEN, CHILDREN = TargetGroup.WOMEN, TargetGroup.CHILDREN
DOOR = machine("notifications", Role.SERVICE)
PHONE = "0912 000 111"


@pytest.fixture
def s(shelters: Any) -> Any:
    shelters.bus.handle(commands.LoadShelters(
        [shelters.shelter("one-pool", pools={WOMEN: 2}), shelters.shelter("two-pools", pools={WOMEN: 2, CHILDREN: 1})],
        [StaffPhone("84912000111", "one-pool", "vi"), StaffPhone("84912000222", "two-pools", "en")]))
    return shelters


def report(phone: str = PHONE, **kwargs: Any) -> commands.ReportBySms:
    return commands.ReportBySms(DOOR, phone, **kwargs)


def test_free_beds_of_a_single_pool_set_its_capacity_over_the_beds_in_use(s: Any) -> None:
    s.bus.handle(s.reserve("r1", "one-pool"))
    done = s.bus.handle(report(free_beds=((None, 3),)))
    assert (done.shelter_id, done.language, done.problem) == ("one-pool", "vi", None)
    pool = s.pool("one-pool", WOMEN)
    assert (pool.capacity, pool.reserved, pool.free) == (4, 1, 3)
    assert s.events(events_pb2.CapacityChanged)[-1].capacity == 4


def test_several_pools_by_code_and_a_single_count_for_them_is_a_problem(s: Any) -> None:
    done = s.bus.handle(report("+84 912 000 222", free_beds=((WOMEN, 0), (CHILDREN, 5))))
    assert done.problem is None and done.language == "en"
    assert (s.pool("two-pools", WOMEN).free, s.pool("two-pools", CHILDREN).free) == (0, 5)
    assert s.bus.handle(report("0912000222", free_beds=((None, 1),))).problem is SmsReportProblem.POOL_REQUIRED
    unknown = s.bus.handle(report("0912000222", free_beds=((TargetGroup.MEN, 1), (WOMEN, 2))))
    assert unknown.problem is SmsReportProblem.UNKNOWN_POOL
    assert s.pool("two-pools", WOMEN).free == 0  # nothing applied when one pool is wrong
    assert s.bus.handle(report(free_beds=((None, 5000),))).problem is SmsReportProblem.TOO_MANY_BEDS


def test_arrival_and_departure_by_short_reference(s: Any) -> None:
    referral = str(uuid.uuid4())
    s.bus.handle(s.reserve(referral, "one-pool"))
    ref = "rf-" + referral.replace("-", "")[-8:].lower()
    assert matches_reference(referral, ref)
    left_early = s.bus.handle(report(left_reference=ref))
    assert left_early.problem is SmsReportProblem.NOT_ARRIVED
    arrived = s.bus.handle(report(arrived_reference=ref))
    assert (arrived.problem, arrived.reservation.status) == (None, ReservationStatus.OCCUPIED)
    assert s.pool("one-pool", WOMEN).occupied == 1
    assert s.bus.handle(report(arrived_reference=ref)).problem is None  # repeating is harmless
    left = s.bus.handle(report(left_reference=ref))
    assert left.reservation.status is ReservationStatus.RELEASED
    assert s.pool("one-pool", WOMEN).occupied == 0
    assert s.bus.handle(report(arrived_reference=ref)).problem is SmsReportProblem.NOT_HELD
    assert s.bus.handle(report(arrived_reference="RF-00000000")).problem is SmsReportProblem.UNKNOWN_REFERENCE


def test_a_reference_of_another_shelter_is_unknown(s: Any) -> None:
    referral = str(uuid.uuid4())
    s.bus.handle(s.reserve(referral, "two-pools"))
    done = s.bus.handle(report(arrived_reference="RF-" + referral[-8:]))
    assert done.problem is SmsReportProblem.UNKNOWN_REFERENCE


def test_an_unregistered_phone_is_not_found_and_only_the_door_may_call(s: Any) -> None:
    with pytest.raises(NotFound):
        s.bus.handle(report("0999 999 999", free_beds=((None, 1),)))
    with pytest.raises(NotFound):
        s.bus.handle(report("not a phone"))
    with pytest.raises(PermissionDenied):
        s.bus.handle(commands.ReportBySms(machine("referral", Role.SERVICE), PHONE))
    with pytest.raises(PermissionDenied):
        s.bus.handle(commands.ReportBySms(s.staff("one-pool"), PHONE))
    assert s.pool("one-pool", WOMEN).capacity == 2
