from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update

from refnet_platform.vocabulary import TargetGroup
from shelter.adapters.tables import reservations, shelters
from shelter.domain.model import Reservation, ReservationStatus, Shelter


class ShelterRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add_if_missing(self, shelter: Shelter) -> bool:
        if self.get(shelter.shelter_id):
            return False
        self.conn.execute(insert(shelters).values(
            shelter_id=shelter.shelter_id, name=shelter.name, province_code=shelter.province_code,
            commune_code=shelter.commune_code, target_group=str(shelter.target_group), capacity=shelter.capacity,
            reserved=shelter.reserved, occupied=shelter.occupied, confirmed_at=shelter.confirmed_at,
            address=shelter.address))
        return True

    def get(self, shelter_id: str) -> Shelter | None:
        row = self.conn.execute(select(shelters).where(shelters.c.shelter_id == shelter_id)).mappings().first()
        return _shelter(row) if row else None

    def in_province(self, province_code: str) -> list[Shelter]:
        rows = self.conn.execute(select(shelters).where(shelters.c.province_code == province_code)
                                 .order_by(shelters.c.shelter_id)).mappings()
        return [_shelter(r) for r in rows]

    def take_bed(self, shelter_id: str) -> bool:
        """Holds one bed if one is free, in a single conditional UPDATE: never overbooks, even concurrently."""
        result = self.conn.execute(
            update(shelters)
            .where(shelters.c.shelter_id == shelter_id,
                   shelters.c.reserved + shelters.c.occupied < shelters.c.capacity)
            .values(reserved=shelters.c.reserved + 1))
        return result.rowcount == 1

    def set_capacity(self, shelter_id: str, capacity: int, confirmed_at: object) -> bool:
        """Sets capacity unless it would fall below the beds in use."""
        result = self.conn.execute(
            update(shelters)
            .where(shelters.c.shelter_id == shelter_id, shelters.c.reserved + shelters.c.occupied <= capacity)
            .values(capacity=capacity, confirmed_at=confirmed_at))
        return result.rowcount == 1

    def add_reservation(self, reservation: Reservation) -> None:
        self.conn.execute(insert(reservations).values(
            referral_id=reservation.referral_id, shelter_id=reservation.shelter_id, case_id=reservation.case_id,
            province_code=reservation.province_code, status=str(reservation.status),
            hold_until=reservation.hold_until))

    def reservation(self, referral_id: str) -> Reservation | None:
        row = self.conn.execute(
            select(reservations).where(reservations.c.referral_id == referral_id)).mappings().first()
        return Reservation(**{**dict(row), "status": ReservationStatus(row["status"])}) if row else None


def _shelter(r: Any) -> Shelter:
    return Shelter(**{**dict(r), "target_group": TargetGroup(r["target_group"])})
