"""shelter's rules: one function per command, (cmd, uow, ...) -> result.

Every bed count changes in the same transaction as the reservation that explains it, through a
conditional UPDATE (see adapters/repository.py), and each change emits the pool's new counts
(CapacityChanged) so hotline screens everywhere follow along.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

import refnet_geo as geo
from refnet_platform.caller import Caller, Role
from refnet_platform.clock import Clock
from refnet_platform.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from refnet_platform.phone import normalise_phone
from refnet_platform.vocabulary import (
    POOLS_FOR,
    BedRejectionReason,
    BedReleaseReason,
    ReferralReason,
    ReleaseReason,
    TargetGroup,
)
from shelter.domain import commands, events
from shelter.domain.model import (
    ACTIVE,
    MAX_POOL_CAPACITY,
    Availability,
    BedPool,
    Proximity,
    Reservation,
    ReservationStatus,
    Shelter,
    SmsReport,
    SmsReportProblem,
    availability,
    matches_reference,
    pools_for,
    validate_capacity,
)
from shelter.service_layer.authorization import authorize, may_see
from shelter.service_layer.unit_of_work import ShelterUnitOfWork

log = logging.getLogger(__name__)

UowFactory = Callable[[], ShelterUnitOfWork]
EXPIRY_BATCH = 100
PROXIMITY_OF = {geo.SAME_COMMUNE: Proximity.SAME_COMMUNE, geo.SAME_PROVINCE: Proximity.SAME_PROVINCE,
                geo.NEIGHBOURING_PROVINCE: Proximity.NEIGHBOURING_PROVINCE}


# --- reservations: from referral's commands and the worker's timer ------------------------------


def reserve_bed(cmd: commands.ReserveBed, uow: UowFactory, default_hold: timedelta, clock: Clock) -> Reservation:
    """Holds a bed for a referral, or rejects with a coded reason. Idempotent per referral: a repeat
    returns the first outcome and holds no second bed."""
    with uow() as work:
        existing = work.reservations.get(cmd.referral_id)
        if existing:
            work.commit()
            return existing
        shelter = work.shelters.get(cmd.shelter_id)
        pool, reason = _take_bed(work, shelter, cmd.target_group)
        reservation = Reservation(
            referral_id=cmd.referral_id, shelter_id=cmd.shelter_id, case_id=cmd.case_id,
            province_code=shelter.province_code if shelter else cmd.province_code,
            target_group=pool.target_group if pool else cmd.target_group,
            status=ReservationStatus.HELD if pool else ReservationStatus.REJECTED,
            hold_until=cmd.hold_until or clock() + default_hold, reason=str(reason or ""))
        raced = not work.reservations.add(reservation)
        if not raced:
            if pool and shelter:
                work.emit(events.BedReserved(reservation, pool.free))
                work.emit(events.CapacityChanged(shelter.province_code, shelter.commune_code, pool))
            else:
                assert reason is not None  # no pool, so a reason
                work.emit(events.BedReservationRejected(cmd.referral_id, cmd.case_id, cmd.shelter_id,
                                                        reservation.province_code, reason))
            work.commit()
    if raced:
        # A concurrent attempt for the same referral recorded its outcome first; leaving the block without
        # committing rolled this attempt back, bed included. Report the first outcome.
        with uow() as work:
            first = work.reservations.get(cmd.referral_id)
            work.commit()
        assert first is not None
        return first
    log.info("bed reserved" if pool else "bed reservation rejected",
             extra={"fields": {"referral_id": cmd.referral_id, "shelter_id": cmd.shelter_id,
                               "reason": str(reason or "")}})
    return reservation


def _take_bed(work: ShelterUnitOfWork, shelter: Shelter | None, group: TargetGroup | None
              ) -> tuple[BedPool | None, BedRejectionReason | None]:
    """The pool a bed was taken from, or why none was."""
    if shelter is None:
        return None, BedRejectionReason.UNKNOWN_SHELTER
    candidates = pools_for(group, [p.target_group for p in shelter.pools])
    if not candidates:
        return None, BedRejectionReason.NO_MATCHING_BEDS
    for candidate in candidates:
        pool = work.shelters.take_bed(shelter.shelter_id, candidate)
        if pool:
            return pool, None
    return None, BedRejectionReason.NO_CAPACITY


def release_bed(cmd: commands.ReleaseBed, uow: UowFactory) -> Reservation | None:
    """Frees the bed held or occupied for a referral (cancelled, consent withdrawn, case erased...).
    A release of a referral with no bed is a no-op, so a repeat is harmless."""
    reason: ReleaseReason = cmd.reason or BedReleaseReason.CANCELLED
    with uow() as work:
        reservation = work.reservations.get(cmd.referral_id)
        released = None
        while reservation and reservation.status in ACTIVE and released is None:
            released = _release(work, reservation, reason)
            # Lost to a concurrent arrival or expiry: release whatever it has become (statuses only move on).
            reservation = work.reservations.get(cmd.referral_id)
        if reservation and reason == ReferralReason.CASE_ERASED:
            work.reservations.forget_case(cmd.referral_id)
        work.commit()
    log.info("bed released" if released else "nothing to release",
             extra={"fields": {"referral_id": cmd.referral_id, "reason": reason}})
    return released


def _release(work: ShelterUnitOfWork, reservation: Reservation, reason: ReleaseReason) -> Reservation | None:
    moved = work.reservations.move(reservation.referral_id, reservation.status, ReservationStatus.RELEASED, reason)
    if moved is None:  # a concurrent transition (arrival, expiry) won: the bed is already accounted for
        return None
    pool = _free_bed(work, reservation)
    if reason == ReferralReason.CASE_ERASED:
        moved = replace(moved, case_id="")
    work.emit(events.BedReleased(moved, reason))
    _emit_counts(work, moved, pool)
    return moved


def _free_bed(work: ShelterUnitOfWork, reservation: Reservation) -> BedPool:
    assert reservation.target_group is not None  # held and occupied reservations always name their pool
    return work.shelters.free_bed(reservation.shelter_id, reservation.target_group, reservation.status)


def _emit_counts(work: ShelterUnitOfWork, reservation: Reservation, pool: BedPool) -> None:
    shelter = work.shelters.get(reservation.shelter_id)
    assert shelter is not None
    work.emit(events.CapacityChanged(shelter.province_code, shelter.commune_code, pool))


def expire_holds(cmd: commands.ExpireHolds, uow: UowFactory, clock: Clock) -> int:
    """The timer: every hold past its deadline expires and frees its bed. One transaction per hold, so
    a worker holds at most one reservation and one pool lock at a time; replicas can race safely."""
    now = cmd.now or clock()
    expired = 0
    while True:
        with uow() as work:
            due = work.reservations.due(now, EXPIRY_BATCH)
        for reservation in due:
            with uow() as work:
                moved = work.reservations.move(reservation.referral_id, ReservationStatus.HELD,
                                               ReservationStatus.EXPIRED, BedReleaseReason.HOLD_EXPIRED)
                if moved:
                    pool = _free_bed(work, reservation)
                    work.emit(events.HoldExpired(moved))
                    _emit_counts(work, moved, pool)
                    work.commit()
                    expired += 1
                    log.info("hold expired", extra={"fields": {"referral_id": moved.referral_id,
                                                               "shelter_id": moved.shelter_id}})
        if len(due) < EXPIRY_BATCH:
            return expired


# --- the shelter's own staff ------------------------------------------------------------------


def _own_staff(method: str, caller: Caller, shelter_id: str) -> None:
    """A call naming a shelter: the role from the authorization table, then the shelter within its scope
    (for staff: the shelter they act for). Decided before anything is looked up."""
    if not authorize(method, caller).allows(caller, shelter_id):
        raise PermissionDenied(f"{caller.subject_id} acts for {caller.organisation_id or 'no shelter'}, "
                               f"not {shelter_id or 'no shelter'}")


def update_availability(cmd: commands.UpdateAvailability, uow: UowFactory, stale_after: timedelta, clock: Clock
                        ) -> Availability:
    """Sets one pool's capacity and confirms its counts (adding the pool if the shelter has none for that group)."""
    _own_staff("UpdateAvailability", cmd.caller, cmd.shelter_id)
    validate_capacity(cmd.capacity)
    now = clock()
    with uow() as work:
        shelter = work.shelters.get(cmd.shelter_id)
        if shelter is None:
            raise NotFound(f"shelter {cmd.shelter_id} not found")
        group = cmd.target_group or _only_pool(shelter)
        if shelter.pool(group) is None:
            work.shelters.add_pool(BedPool(shelter.shelter_id, group, 0, 0, 0, now))
        pool = work.shelters.set_capacity(shelter.shelter_id, group, cmd.capacity, now)
        if pool is None:
            current = work.shelters.pool(shelter.shelter_id, group)
            assert current is not None
            raise FailedPrecondition(
                f"capacity {cmd.capacity} is below the {current.in_use} {group} beds in use at {shelter.shelter_id} "
                f"({current.reserved} held, {current.occupied} occupied); check out or wait for holds to end first")
        work.emit(events.CapacityChanged(shelter.province_code, shelter.commune_code, pool))
        work.commit()
    log.info("availability updated", extra={"fields": {"shelter_id": shelter.shelter_id, "target_group": str(group),
                                                       "capacity": cmd.capacity}})
    return availability(shelter, pool, now, stale_after)


def _only_pool(shelter: Shelter) -> TargetGroup:
    if len(shelter.pools) == 1:
        return shelter.pools[0].target_group
    kept = ", ".join(str(p.target_group) for p in shelter.pools) or "no group yet"
    raise InvalidArgument("target_group", f"required: {shelter.shelter_id} keeps beds for {kept}")


def confirm_arrival(cmd: commands.ConfirmArrival, uow: UowFactory) -> Reservation:
    """The survivor arrived: her held bed becomes occupied. Confirming twice is harmless."""
    with uow() as work:
        reservation = _staff_reservation(work, "ConfirmArrival", cmd.caller, cmd.referral_id)
        if reservation.status is ReservationStatus.OCCUPIED:
            return reservation
        moved = work.reservations.move(reservation.referral_id, ReservationStatus.HELD, ReservationStatus.OCCUPIED)
        if moved is None:
            raise FailedPrecondition(_not_held(reservation))
        assert moved.target_group is not None
        pool = work.shelters.occupy_held_bed(moved.shelter_id, moved.target_group)
        if pool is None:
            raise RuntimeError(f"no held bed to occupy in pool {moved.shelter_id}/{moved.target_group}")
        work.emit(events.BedOccupied(moved))
        _emit_counts(work, moved, pool)
        work.commit()
    log.info("arrival confirmed", extra={"fields": {"referral_id": moved.referral_id, "shelter_id": moved.shelter_id}})
    return moved


def _not_held(reservation: Reservation) -> str:
    current = reservation.status
    if current is ReservationStatus.EXPIRED:
        return (f"the hold for referral {reservation.referral_id} expired at {reservation.hold_until:%Y-%m-%d %H:%M} "
                f"UTC; ask the hotline to reserve again")
    if current is ReservationStatus.REJECTED:
        return f"no bed was reserved for referral {reservation.referral_id} ({reservation.reason})"
    return f"the bed for referral {reservation.referral_id} was released ({reservation.reason})"


def check_out(cmd: commands.CheckOut, uow: UowFactory) -> Reservation:
    """The survivor left: her bed is free again. Checking out twice is harmless."""
    with uow() as work:
        reservation = _staff_reservation(work, "CheckOut", cmd.caller, cmd.referral_id)
        if reservation.status is ReservationStatus.RELEASED and reservation.reason == BedReleaseReason.CHECKED_OUT:
            return reservation
        if reservation.status is not ReservationStatus.OCCUPIED:
            if reservation.status is ReservationStatus.HELD:
                raise FailedPrecondition(f"referral {cmd.referral_id} has not arrived: confirm the arrival first, "
                                         f"or let the hold end at {reservation.hold_until:%Y-%m-%d %H:%M} UTC")
            raise FailedPrecondition(_not_held(reservation))
        released = _release(work, reservation, BedReleaseReason.CHECKED_OUT)
        if released is None:
            raise FailedPrecondition(f"referral {cmd.referral_id} changed meanwhile; look it up again")
        work.commit()
    log.info("checked out", extra={"fields": {"referral_id": cmd.referral_id, "shelter_id": released.shelter_id}})
    return released


def _staff_reservation(work: ShelterUnitOfWork, method: str, caller: Caller, referral_id: str) -> Reservation:
    """The role is checked before the reservation is looked up; a reservation at another shelter then answers
    exactly as a referral with none (one raise, one message), so a referral id tells staff nothing about
    where another shelter's survivor is."""
    scope = authorize(method, caller)
    reservation = work.reservations.get(referral_id)
    if reservation is None or not scope.allows(caller, reservation.shelter_id):
        raise NotFound(f"no reservation for referral {referral_id}")
    return reservation


def list_reservations(cmd: commands.ListReservations, uow: UowFactory) -> list[Reservation]:
    shelter_id = cmd.shelter_id or cmd.caller.organisation_id
    _own_staff("ListReservations", cmd.caller, shelter_id)
    with uow() as work:
        return work.reservations.at_shelter(shelter_id, ACTIVE)


# --- queries -----------------------------------------------------------------------------------


def get_shelter(cmd: commands.GetShelter, uow: UowFactory, stale_after: timedelta, clock: Clock
                ) -> tuple[Shelter, list[Availability]]:
    """The shelter and its pools; its confidential fields (address, commune) only to their audience."""
    authorize("GetShelter", cmd.caller)
    with uow() as work:
        shelter = work.shelters.get(cmd.shelter_id)
    if shelter is None:
        raise NotFound(f"shelter {cmd.shelter_id} not found")
    shelter = replace(shelter, address=shelter.address if may_see(cmd.caller, "address", shelter.shelter_id) else "",
                      commune_code=shelter.commune_code if may_see(cmd.caller, "commune_code", shelter.shelter_id)
                      else "")
    now = clock()
    return shelter, [availability(shelter, p, now, stale_after) for p in shelter.pools]


def as_seen_by(caller: Caller, row: Availability) -> Availability:
    """A pool as this caller may see it: without the shelter's commune unless the caller is in its audience,
    and then no nearer than the same province either, since `same_commune` would give the commune away."""
    if may_see(caller, "commune_code", row.shelter_id):
        return row
    nearest = Proximity.SAME_PROVINCE if row.proximity is Proximity.SAME_COMMUNE else row.proximity
    return replace(row, commune_code="", proximity=nearest)


@dataclass(frozen=True)
class Place:
    """Where a survivor is, on today's map, and the provinces searched around it."""

    province_code: str
    commune_code: str | None
    neighbours: tuple[str, ...]

    def proximity(self, shelter: Shelter) -> Proximity | None:
        try:
            rank = geo.distance_rank(self.province_code, self.commune_code, shelter.province_code,
                                     shelter.commune_code or None)
        except geo.GeoError:  # a shelter filed under a commune code the map does not know: rank by province
            rank = geo.distance_rank(self.province_code, None, shelter.province_code, None)
        return PROXIMITY_OF.get(rank) if rank is not None else None


def resolve_place(province_code: str, commune_code: str = "") -> Place:
    if not province_code:
        raise InvalidArgument("province_code", "is required")
    try:
        province = geo.resolve_province(province_code)
        commune = geo.resolve_commune(commune_code).code if commune_code else None
    except geo.GeoError as exc:
        raise InvalidArgument(exc.field, exc.problem) from None
    if commune and not geo.commune_in_province(commune, province.code):
        raise InvalidArgument("commune_code", f"{commune_code} is not in province {province.code}")
    return Place(province.code, commune, geo.neighbours(province.code))


@dataclass(frozen=True)
class AvailabilityList:
    rows: list[Availability]
    neighbours_included: bool


def list_availability(cmd: commands.ListAvailability, uow: UowFactory, stale_after: timedelta, clock: Clock
                      ) -> AvailabilityList:
    """Pools a survivor could use, nearest first and, at one distance, fresh free beds first. Neighbouring
    provinces come in when asked for, or (fallback) when the province has no fresh free bed. A shelter's commune
    counts (and shows) only for a caller who may see it."""
    authorize("ListAvailability", cmd.caller)
    place = resolve_place(cmd.province_code, cmd.commune_code)
    groups = set(POOLS_FOR[cmd.target_group]) if cmd.target_group else None
    with uow() as work:
        found = work.shelters.in_provinces((place.province_code, *place.neighbours))
    now = clock()
    rows = [as_seen_by(cmd.caller, availability(s, p, now, stale_after, place.proximity(s)))
            for s in found if cmd.accessibility <= s.accessibility
            for p in s.pools if groups is None or p.target_group in groups]
    home = [r for r in rows if r.province_code == place.province_code]
    include = cmd.include_neighbours or (cmd.fallback and not any(r.free for r in home))
    chosen = rows if include else home
    order = list(Proximity)
    chosen.sort(key=lambda r: (order.index(r.proximity) if r.proximity else len(order), r.free == 0, r.stale,
                               r.shelter_id, r.pool.target_group))
    return AvailabilityList(chosen, neighbours_included=include)


@dataclass(frozen=True)
class WatchScope:
    place: Place
    provinces: frozenset[str]
    groups: frozenset[TargetGroup] | None

    def wants(self, change: events.CapacityChanged) -> bool:
        return change.province_code in self.provinces and (
            self.groups is None or change.pool.target_group in self.groups)


def watch_scope(cmd: commands.WatchAvailability) -> WatchScope:
    authorize("WatchAvailability", cmd.caller)
    place = resolve_place(cmd.province_code, cmd.commune_code)
    provinces = {place.province_code, *(place.neighbours if cmd.include_neighbours else ())}
    groups = frozenset(POOLS_FOR[cmd.target_group]) if cmd.target_group else None
    return WatchScope(place, frozenset(provinces), groups)


# --- the SMS door: a text from a phone on a shelter's staff record ------------------------------


def report_by_sms(cmd: commands.ReportBySms, uow: UowFactory, stale_after: timedelta, clock: Clock) -> SmsReport:
    """The phone decides the shelter; the report then goes through the shelter's own staff commands (so the
    counts change, and are published, exactly as from the shelter page). What cannot be applied comes back as
    a problem, with the pools, for the door to answer with the right form."""
    scope = authorize("ReportBySms", cmd.caller)
    if not scope.allows(cmd.caller, ""):
        raise PermissionDenied(f"ReportBySms is the SMS door's, not {cmd.caller.subject_id}'s")
    phone = normalise_phone(cmd.sender_phone)
    with uow() as work:
        staff = work.shelters.staff_phone(phone) if phone else None
        shelter = work.shelters.get(staff.shelter_id) if staff else None
    if staff is None or shelter is None:
        raise NotFound("no shelter's staff record holds this phone")
    as_staff = Caller("sms-door", Role.SHELTER, organisation_id=shelter.shelter_id)
    reservation: Reservation | None = None
    problem: SmsReportProblem | None = None
    if cmd.free_beds:
        problem = _set_free_beds(as_staff, shelter, cmd.free_beds, uow, stale_after, clock)
    elif cmd.arrived_reference or cmd.left_reference:
        reservation, problem = _arrival_or_departure(as_staff, shelter, cmd, uow)
    after = get_shelter(commands.GetShelter(as_staff, shelter.shelter_id), uow, stale_after, clock)[1]
    log.info("sms report", extra={"fields": {"shelter_id": shelter.shelter_id, "problem": str(problem or ""),
                                             "referral_id": reservation.referral_id if reservation else ""}})
    return SmsReport(shelter.shelter_id, staff.language, after, reservation, problem)


def _set_free_beds(as_staff: Caller, shelter: Shelter, counts: tuple[tuple[TargetGroup | None, int], ...],
                   uow: UowFactory, stale_after: timedelta, clock: Clock) -> SmsReportProblem | None:
    """Free beds now, per pool: each pool's capacity becomes the beds in use plus the free ones (a hold taken
    meanwhile is counted by trying again). Every pool is checked before any changes."""
    wanted: list[tuple[TargetGroup, int]] = []
    for group, free in counts:
        if group is None:
            if len(shelter.pools) != 1:
                return SmsReportProblem.POOL_REQUIRED
            group = shelter.pools[0].target_group
        if shelter.pool(group) is None:
            return SmsReportProblem.UNKNOWN_POOL
        if free < 0 or free + shelter.pool(group).in_use > MAX_POOL_CAPACITY:  # type: ignore[union-attr]
            return SmsReportProblem.TOO_MANY_BEDS
        wanted.append((group, free))
    for group, free in wanted:
        for attempt in range(3):
            with uow() as work:
                current = work.shelters.pool(shelter.shelter_id, group)
            assert current is not None
            try:
                update_availability(commands.UpdateAvailability(as_staff, shelter.shelter_id, group,
                                                                current.in_use + free), uow, stale_after, clock)
                break
            except FailedPrecondition:  # a bed was taken between the read and the update
                if attempt == 2:
                    raise
            except InvalidArgument:
                return SmsReportProblem.TOO_MANY_BEDS
    return None


def _arrival_or_departure(as_staff: Caller, shelter: Shelter, cmd: commands.ReportBySms, uow: UowFactory
                          ) -> tuple[Reservation | None, SmsReportProblem | None]:
    reference = cmd.arrived_reference or cmd.left_reference
    with uow() as work:
        found = [r for r in work.reservations.at_shelter(shelter.shelter_id, list(ReservationStatus))
                 if matches_reference(r.referral_id, reference)]
    if not found:
        return None, SmsReportProblem.UNKNOWN_REFERENCE
    found.sort(key=lambda r: r.status not in ACTIVE)  # an active bed first, should two references collide
    reservation = found[0]
    try:
        if cmd.arrived_reference:
            return confirm_arrival(commands.ConfirmArrival(as_staff, reservation.referral_id), uow), None
        return check_out(commands.CheckOut(as_staff, reservation.referral_id), uow), None
    except FailedPrecondition:
        held = reservation.status is ReservationStatus.HELD
        return reservation, SmsReportProblem.NOT_ARRIVED if cmd.left_reference and held else SmsReportProblem.NOT_HELD


# --- the directory -----------------------------------------------------------------------------


def load_shelters(cmd: commands.LoadShelters, uow: UowFactory) -> int:
    """Adds the directory's shelters and pools, refreshing profiles; counts already kept are never overwritten.
    Safe when several api replicas start together."""
    added = 0
    with uow() as work:
        for staff in cmd.staff_phones:
            work.shelters.save_staff_phone(staff)
        for shelter in cmd.shelters:
            work.shelters.save_profile(shelter)
            for pool in shelter.pools:
                if work.shelters.add_pool(pool):
                    added += 1
                    work.emit(events.CapacityChanged(shelter.province_code, shelter.commune_code, pool))
        work.commit()
    log.info("shelters loaded", extra={"fields": {"shelters": len(cmd.shelters), "pools_added": added}})
    return added
