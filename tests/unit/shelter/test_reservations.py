"""Holding, occupying and releasing beds through shelter's handlers (SQLite file, no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from refnet.shelter.v1 import events_pb2
from refnet_platform.caller import Caller, Role, machine
from refnet_platform.errors import FailedPrecondition, NotFound, PermissionDenied
from refnet_platform.vocabulary import TargetGroup
from shelter.adapters.repository import ReservationRepository
from shelter.adapters.tables import reservations
from shelter.domain import commands
from shelter.domain.model import ReservationStatus

WOMEN, WITH_CHILDREN, CHILDREN = TargetGroup.WOMEN, TargetGroup.WOMEN_WITH_CHILDREN, TargetGroup.CHILDREN


@pytest.fixture
def s(shelters: Any) -> Any:
    shelters.load(shelters.shelter("qn-spc", pools={WOMEN: 2}))
    return shelters


def test_a_bed_is_held_until_the_deadline_and_announced(s: Any) -> None:
    held = s.bus.handle(s.reserve("r1"))
    assert (held.status, held.target_group) == (ReservationStatus.HELD, WOMEN)
    pool = s.pool("qn-spc", WOMEN)
    assert (pool.reserved, pool.free) == (1, 1)
    reserved = s.events(events_pb2.BedReserved)
    assert [(e.referral_id, e.shelter_id, e.province_code, e.free_after) for e in reserved] == [
        ("r1", "qn-spc", "22", 1)]
    assert s.events(events_pb2.CapacityChanged)[-1].reserved == 1


def test_a_repeated_reserve_for_a_referral_holds_no_second_bed(s: Any) -> None:
    first = s.bus.handle(s.reserve("r1"))
    again = s.bus.handle(s.reserve("r1"))
    assert again == first
    assert s.pool("qn-spc", WOMEN).reserved == 1
    assert len(s.events(events_pb2.BedReserved)) == 1


def test_the_last_bed_goes_once_then_reservations_are_rejected_with_a_reason(s: Any) -> None:
    outcomes = [s.bus.handle(s.reserve(f"r{i}")).status for i in range(4)]
    assert outcomes == [ReservationStatus.HELD] * 2 + [ReservationStatus.REJECTED] * 2
    rejected = s.events(events_pb2.BedReservationRejected)
    assert [(e.referral_id, e.reason) for e in rejected] == [("r2", "no_capacity"), ("r3", "no_capacity")]
    # The same referral asking again gets the same answer, even once a bed is free.
    s.bus.handle(commands.ReleaseBed("r0", "qn-spc", "cancelled"))
    assert s.bus.handle(s.reserve("r2")).status is ReservationStatus.REJECTED
    assert s.pool("qn-spc", WOMEN).reserved == 1


def test_rejections_name_an_unknown_shelter_and_a_group_it_does_not_keep(s: Any) -> None:
    assert s.bus.handle(s.reserve("r1", shelter_id="nowhere")).reason == "unknown_shelter"
    assert s.bus.handle(s.reserve("r2", group=CHILDREN)).reason == "no_matching_beds"
    assert [e.reason for e in s.events(events_pb2.BedReservationRejected)] == ["unknown_shelter", "no_matching_beds"]


def test_a_woman_alone_may_take_a_bed_for_women_with_children_but_not_the_reverse(shelters: Any) -> None:
    shelters.load(shelters.shelter("mixed", pools={WOMEN: 1, WITH_CHILDREN: 1}))
    assert shelters.bus.handle(shelters.reserve("a", "mixed", WOMEN)).target_group is WOMEN
    assert shelters.bus.handle(shelters.reserve("b", "mixed", WOMEN)).target_group is WITH_CHILDREN
    assert shelters.bus.handle(shelters.reserve("c", "mixed", WITH_CHILDREN)).reason == "no_capacity"
    shelters.load(shelters.shelter("women-only", pools={WOMEN: 3}))
    assert shelters.bus.handle(shelters.reserve("d", "women-only", WITH_CHILDREN)).reason == "no_matching_beds"
    assert shelters.bus.handle(shelters.reserve("e", "women-only", None)).target_group is WOMEN


def test_no_deadline_means_the_default_hold(s: Any) -> None:
    command = commands.ReserveBed("r1", "c1", "qn-spc", "22", WOMEN, None)
    held = s.bus.handle(command)
    assert timedelta(hours=3, minutes=59) < held.hold_until - datetime.now(UTC) <= timedelta(hours=4)


@pytest.mark.parametrize("reason", ["cancelled", "consent_withdrawn", "case_erased", "declined"])
def test_referral_releases_a_held_bed(s: Any, reason: str) -> None:
    s.bus.handle(s.reserve("r1"))
    released = s.bus.handle(commands.ReleaseBed("r1", "qn-spc", reason))
    assert (released.status, released.reason) == (ReservationStatus.RELEASED, reason)
    assert s.pool("qn-spc", WOMEN).in_use == 0
    [event] = s.events(events_pb2.BedReleased)
    assert (event.referral_id, event.reason) == ("r1", reason)
    assert event.case_id == ("" if reason == "case_erased" else "case-r1")
    # A repeat is harmless.
    assert s.bus.handle(commands.ReleaseBed("r1", "qn-spc", reason)) is None
    assert len(s.events(events_pb2.BedReleased)) == 1


def test_erasing_a_case_releases_an_occupied_bed_and_forgets_the_case(s: Any) -> None:
    s.bus.handle(s.reserve("r1"))
    s.bus.handle(commands.ConfirmArrival(s.staff("qn-spc"), "r1"))
    s.bus.handle(commands.ReleaseBed("r1", "qn-spc", "case_erased"))
    assert s.pool("qn-spc", WOMEN).in_use == 0
    # Even ended reservations lose the link to an erased case.
    s.bus.handle(s.reserve("r2"))
    s.bus.handle(commands.ReleaseBed("r2", "qn-spc", "cancelled"))
    s.bus.handle(commands.ReleaseBed("r2", "qn-spc", "case_erased"))
    with s.engine.connect() as conn:
        kept = dict(conn.execute(select(reservations.c.referral_id, reservations.c.case_id)).all())
    assert kept == {"r1": "", "r2": ""}


def test_releasing_a_referral_that_has_no_bed_changes_nothing(s: Any) -> None:
    assert s.bus.handle(commands.ReleaseBed("never-reserved", "qn-spc", "cancelled")) is None
    s.bus.handle(s.reserve("r1", group=CHILDREN))  # rejected
    assert s.bus.handle(commands.ReleaseBed("r1", "qn-spc", "cancelled")) is None
    assert s.events(events_pb2.BedReleased) == []


def test_holds_past_their_deadline_expire_and_free_their_beds(s: Any) -> None:
    s.bus.handle(s.reserve("due", hold=timedelta(seconds=-1)))
    s.bus.handle(s.reserve("later", hold=timedelta(hours=1)))
    assert s.bus.handle(commands.ExpireHolds()) == 1
    assert s.pool("qn-spc", WOMEN).reserved == 1
    [expired] = s.events(events_pb2.HoldExpired)
    assert (expired.referral_id, expired.case_id, expired.shelter_id) == ("due", "case-due", "qn-spc")
    assert s.bus.handle(commands.ExpireHolds()) == 0
    assert s.bus.handle(commands.ExpireHolds(now=datetime.now(UTC) + timedelta(hours=2))) == 1
    assert s.pool("qn-spc", WOMEN).in_use == 0


def test_expiry_works_through_more_holds_than_one_batch(shelters: Any) -> None:
    shelters.load(shelters.shelter("big", pools={WOMEN: 250}))
    for i in range(230):
        shelters.bus.handle(shelters.reserve(f"r{i}", "big", hold=timedelta(seconds=-1)))
    assert shelters.bus.handle(commands.ExpireHolds()) == 230
    assert shelters.pool("big", WOMEN).in_use == 0


def test_arrival_occupies_the_held_bed_and_check_out_frees_it(s: Any) -> None:
    s.bus.handle(s.reserve("r1"))
    me = s.staff("qn-spc")
    occupied = s.bus.handle(commands.ConfirmArrival(me, "r1"))
    assert occupied.status is ReservationStatus.OCCUPIED
    assert s.bus.handle(commands.ConfirmArrival(me, "r1")) == occupied  # harmless twice
    pool = s.pool("qn-spc", WOMEN)
    assert (pool.reserved, pool.occupied) == (0, 1)
    # An occupied bed does not expire.
    assert s.bus.handle(commands.ExpireHolds(now=datetime.now(UTC) + timedelta(days=1))) == 0
    out = s.bus.handle(commands.CheckOut(me, "r1"))
    assert (out.status, out.reason) == (ReservationStatus.RELEASED, "checked_out")
    assert s.bus.handle(commands.CheckOut(me, "r1")) == out
    assert s.pool("qn-spc", WOMEN).in_use == 0
    assert [e.referral_id for e in s.events(events_pb2.BedOccupied)] == ["r1"]
    assert [e.reason for e in s.events(events_pb2.BedReleased)] == ["checked_out"]


def test_arrival_after_the_hold_expired_is_refused_clearly(s: Any) -> None:
    s.bus.handle(s.reserve("r1", hold=timedelta(seconds=-1)))
    s.bus.handle(commands.ExpireHolds())
    with pytest.raises(FailedPrecondition, match=r"expired .* ask the hotline to reserve again"):
        s.bus.handle(commands.ConfirmArrival(s.staff("qn-spc"), "r1"))
    s.bus.handle(s.reserve("r2"))
    with pytest.raises(FailedPrecondition, match="has not arrived"):
        s.bus.handle(commands.CheckOut(s.staff("qn-spc"), "r2"))


STAFF_ACTIONS = [commands.ConfirmArrival, commands.CheckOut]


def refusal(s: Any, command: Any) -> Exception:
    with pytest.raises(Exception) as caught:
        s.bus.handle(command)
    return caught.value


@pytest.mark.parametrize("action", STAFF_ACTIONS)
def test_another_shelters_referral_answers_exactly_as_an_unknown_one(s: Any, action: Any) -> None:
    """Staff of one shelter naming a referral reserved at another learn nothing of where she is."""
    other_staff = [s.staff("qn-campha-temp"), s.person("campha-staff", "qn-campha-temp")]
    unknown = [refusal(s, action(caller, "r1")) for caller in other_staff]  # r1 has no reservation yet
    s.bus.handle(s.reserve("r1"))  # now it has one, at qn-spc
    if action is commands.CheckOut:
        s.bus.handle(commands.ConfirmArrival(s.staff("qn-spc"), "r1"))
    elsewhere = [refusal(s, action(caller, "r1")) for caller in other_staff]
    for before, after in zip(unknown, elsewhere, strict=True):
        assert (type(after), str(after)) == (type(before), str(before)) == (NotFound, "no reservation for referral r1")
        assert "qn-spc" not in str(after)
    pool = s.pool("qn-spc", WOMEN)
    assert (pool.reserved + pool.occupied, len(s.events(events_pb2.BedReleased))) == (1, 0)


@pytest.mark.parametrize("action", STAFF_ACTIONS)
def test_a_role_not_allowed_is_refused_before_the_reservation_is_looked_up(
        s: Any, action: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    s.bus.handle(s.reserve("r1"))
    looked_up: list[str] = []
    original = ReservationRepository.get

    def get(self: ReservationRepository, referral_id: str) -> Any:
        looked_up.append(referral_id)
        return original(self, referral_id)

    monkeypatch.setattr(ReservationRepository, "get", get)
    callers = [s.operator, Caller("qn-supervisor", Role.SUPERVISOR, provinces=frozenset({"*"}), person=True),
               machine("qn-police", Role.AGENCY), Caller("clinic-nurse", Role.AGENCY, "qn-spc", person=True),
               s.routing, Caller("ops-1", Role.OPS, provinces=frozenset({"*"}), person=True)]
    for caller in callers:
        for referral_id in ("r1", "unknown"):  # the same answer whether or not the referral has a bed
            error = refusal(s, action(caller, referral_id))
            assert isinstance(error, PermissionDenied), caller
            assert str(error) == f"{action.__name__} is not open to the {caller.role} role"
    assert looked_up == []
    monkeypatch.undo()
    assert s.pool("qn-spc", WOMEN).reserved == 1


def test_only_the_shelters_own_staff_list_its_reservations(s: Any) -> None:
    s.bus.handle(s.reserve("r1"))
    for caller in (s.staff("qn-campha-temp"), s.person("qn-spc", "qn-campha-temp"), s.operator):
        with pytest.raises(PermissionDenied):
            s.bus.handle(commands.ListReservations(caller, "qn-spc"))
    # A person whose user name happens to be a shelter id acts for the shelter in their token, not that one.
    assert s.bus.handle(commands.ListReservations(s.person("qn-spc", "qn-campha-temp"), "")) == []


def test_a_shelter_person_works_like_the_shelter_machine(shelters: Any) -> None:
    """Staff signed in as people ("qn-spc-staff" for "qn-shelter-spc") do what the shelter's system does."""
    shelters.load(shelters.shelter("qn-shelter-spc", pools={WOMEN: 2}))
    outcomes = []
    for i, me in enumerate((shelters.staff("qn-shelter-spc"), shelters.person("qn-spc-staff", "qn-shelter-spc"))):
        shelters.bus.handle(shelters.reserve(f"r{i}", "qn-shelter-spc"))
        listed = shelters.bus.handle(commands.ListReservations(me, ""))
        arrived = shelters.bus.handle(commands.ConfirmArrival(me, f"r{i}"))
        updated = shelters.bus.handle(commands.UpdateAvailability(me, "qn-shelter-spc", WOMEN, 3))
        own, _ = shelters.bus.handle(commands.GetShelter(me, "qn-shelter-spc"))
        out = shelters.bus.handle(commands.CheckOut(me, f"r{i}"))
        outcomes.append(([r.referral_id for r in listed], arrived.status, updated.pool.capacity, updated.commune_code,
                         own.address, own.commune_code, (out.status, out.reason)))
    machine_did, person_did = outcomes
    assert machine_did == (["r0"], ReservationStatus.OCCUPIED, 3, "06673", "secret address of qn-shelter-spc",
                           "06673", (ReservationStatus.RELEASED, "checked_out"))
    assert person_did == (["r1"], *machine_did[1:])
    assert shelters.pool("qn-shelter-spc", WOMEN).in_use == 0


def test_staff_list_their_held_and_occupied_beds(s: Any) -> None:
    s.bus.handle(s.reserve("late", hold=timedelta(hours=3)))
    s.bus.handle(s.reserve("soon", hold=timedelta(hours=1)))
    s.bus.handle(s.reserve("rejected"))
    s.bus.handle(commands.ConfirmArrival(s.staff("qn-spc"), "late"))
    listed = s.bus.handle(commands.ListReservations(s.staff("qn-spc"), ""))
    assert [(r.referral_id, r.status) for r in listed] == [("soon", ReservationStatus.HELD),
                                                           ("late", ReservationStatus.OCCUPIED)]
