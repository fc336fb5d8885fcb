from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from refnet_platform.errors import FailedPrecondition, NotFound
from shelter.domain import commands, events
from shelter.domain.model import Reservation, ReservationStatus, Shelter, validate_capacity
from shelter.service_layer.unit_of_work import ShelterUnitOfWork

log = logging.getLogger(__name__)

UowFactory = Callable[[], ShelterUnitOfWork]


def reserve_bed(cmd: commands.ReserveBed, uow: UowFactory) -> bool:
    """Holds a bed for a referral, or rejects with a reason. Idempotent per referral."""
    with uow() as work:
        if work.shelters.reservation(cmd.referral_id):
            work.commit()
            return True
        shelter = work.shelters.get(cmd.shelter_id)
        if shelter is None or not work.shelters.take_bed(cmd.shelter_id):
            reason = "unknown_shelter" if shelter is None else "no_capacity"
            work.emit(events.BedReservationRejected(cmd.referral_id, cmd.case_id, cmd.shelter_id, cmd.province_code,
                                                    reason))
            work.commit()
            log.info("bed reservation rejected", extra={"fields": {"referral_id": cmd.referral_id, "reason": reason}})
            return False
        reservation = Reservation(cmd.referral_id, cmd.shelter_id, cmd.case_id, cmd.province_code,
                                  ReservationStatus.HELD, cmd.hold_until)
        work.shelters.add_reservation(reservation)
        free_after = shelter.free - 1
        work.emit(events.BedReserved(reservation, free_after))
        work.commit()
    log.info("bed reserved", extra={"fields": {"referral_id": cmd.referral_id, "shelter_id": cmd.shelter_id}})
    return True


def update_availability(cmd: commands.UpdateAvailability, uow: UowFactory) -> Shelter:
    validate_capacity(cmd.capacity)
    with uow() as work:
        if work.shelters.get(cmd.shelter_id) is None:
            raise NotFound(f"shelter {cmd.shelter_id} not found")
        if not work.shelters.set_capacity(cmd.shelter_id, cmd.capacity, datetime.now(UTC)):
            raise FailedPrecondition(f"capacity {cmd.capacity} is below the beds in use at {cmd.shelter_id}")
        shelter = work.shelters.get(cmd.shelter_id)
        assert shelter is not None
        work.emit(events.CapacityChanged(shelter))
        work.commit()
    return shelter


def list_availability(cmd: commands.ListAvailability, uow: UowFactory) -> list[Shelter]:
    with uow() as work:
        return work.shelters.in_province(cmd.province_code)


def load_shelters(cmd: commands.LoadShelters, uow: UowFactory) -> int:
    with uow() as work:
        added = [s for s in cmd.shelters if work.shelters.add_if_missing(s)]
        for shelter in added:
            work.emit(events.CapacityChanged(shelter))
        work.commit()
    log.info("shelters loaded", extra={"fields": {"shelters": len(cmd.shelters), "added": len(added)}})
    return len(added)
