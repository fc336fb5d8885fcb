"""shelter's rows. Every count change is one conditional UPDATE, so the database, not Python, refuses an
overbooking: two processes racing for the last bed cannot both win, and the CHECK constraint backs it up."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, select, update

from refnet_platform.engine import upsert_insert
from refnet_platform.vocabulary import TargetGroup
from shelter.adapters.tables import bed_pools, reservations, shelters, staff_phones
from shelter.domain.model import Accessibility, BedPool, Reservation, ReservationStatus, Shelter, StaffPhone


def utc(value: datetime) -> datetime:
    """SQLite keeps no zone: everything is stored in UTC and read back as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ShelterRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def save_profile(self, shelter: Shelter) -> None:
        """Adds the shelter, or refreshes its name, place, accessibility and address (never its counts)."""
        values = {"name": shelter.name, "province_code": shelter.province_code,
                  "commune_code": shelter.commune_code, "accessibility": _codes(shelter.accessibility),
                  "address": shelter.address}
        statement = upsert_insert(self.conn, shelters).values(shelter_id=shelter.shelter_id, **values)
        self.conn.execute(statement.on_conflict_do_update(index_elements=["shelter_id"], set_=values))

    def add_pool(self, pool: BedPool) -> BedPool | None:
        """Adds the pool unless the shelter already keeps one for that group; returns it when added."""
        row = self.conn.execute(
            upsert_insert(self.conn, bed_pools).values(
                shelter_id=pool.shelter_id, target_group=str(pool.target_group), capacity=pool.capacity,
                reserved=pool.reserved, occupied=pool.occupied, confirmed_at=utc(pool.confirmed_at),
                version=pool.version)
            .on_conflict_do_nothing().returning(*bed_pools.c)).mappings().first()
        return _pool(row) if row else None

    def save_staff_phone(self, staff: StaffPhone) -> None:
        values = {"shelter_id": staff.shelter_id, "language": staff.language}
        statement = upsert_insert(self.conn, staff_phones).values(phone=staff.phone, **values)
        self.conn.execute(statement.on_conflict_do_update(index_elements=["phone"], set_=values))

    def staff_phone(self, phone: str) -> StaffPhone | None:
        row = self.conn.execute(select(staff_phones).where(staff_phones.c.phone == phone)).mappings().first()
        return StaffPhone(row["phone"], row["shelter_id"], row["language"]) if row else None

    def get(self, shelter_id: str) -> Shelter | None:
        found = self._shelters(shelters.c.shelter_id == shelter_id)
        return found[0] if found else None

    def in_provinces(self, province_codes: Iterable[str]) -> list[Shelter]:
        return self._shelters(shelters.c.province_code.in_(list(province_codes)))

    def _shelters(self, where: ColumnElement[bool]) -> list[Shelter]:
        rows = self.conn.execute(select(shelters).where(where).order_by(shelters.c.shelter_id)).mappings().all()
        if not rows:
            return []
        pools: dict[str, list[BedPool]] = {}
        pool_rows = self.conn.execute(
            select(bed_pools).where(bed_pools.c.shelter_id.in_([r["shelter_id"] for r in rows]))
            .order_by(bed_pools.c.shelter_id, bed_pools.c.target_group)).mappings()
        for p in pool_rows:
            pools.setdefault(p["shelter_id"], []).append(_pool(p))
        return [Shelter(shelter_id=r["shelter_id"], name=r["name"], province_code=r["province_code"],
                        commune_code=r["commune_code"], accessibility=_accessibility(r["accessibility"]),
                        address=r["address"], pools=tuple(pools.get(r["shelter_id"], ())))
                for r in rows]

    def pool(self, shelter_id: str, group: TargetGroup) -> BedPool | None:
        row = self.conn.execute(select(bed_pools).where(*_key(shelter_id, group))).mappings().first()
        return _pool(row) if row else None

    def take_bed(self, shelter_id: str, group: TargetGroup) -> BedPool | None:
        """Holds one bed if one is free; None when the pool is full."""
        return self._change(shelter_id, group, bed_pools.c.reserved + bed_pools.c.occupied < bed_pools.c.capacity,
                            reserved=bed_pools.c.reserved + 1)

    def occupy_held_bed(self, shelter_id: str, group: TargetGroup) -> BedPool | None:
        return self._change(shelter_id, group, bed_pools.c.reserved > 0,
                            reserved=bed_pools.c.reserved - 1, occupied=bed_pools.c.occupied + 1)

    def free_bed(self, shelter_id: str, group: TargetGroup, status: ReservationStatus) -> BedPool:
        """Gives back a held or an occupied bed."""
        column = bed_pools.c.reserved if status is ReservationStatus.HELD else bed_pools.c.occupied
        pool = self._change(shelter_id, group, column > 0, **{column.name: column - 1})
        if pool is None:
            raise RuntimeError(f"no {status} bed to free in pool {shelter_id}/{group}")
        return pool

    def set_capacity(self, shelter_id: str, group: TargetGroup, capacity: int, confirmed_at: datetime
                     ) -> BedPool | None:
        """Sets capacity and confirms the counts, unless it would fall below the beds in use."""
        return self._change(shelter_id, group, bed_pools.c.reserved + bed_pools.c.occupied <= capacity,
                            capacity=capacity, confirmed_at=utc(confirmed_at))

    def _change(self, shelter_id: str, group: TargetGroup, condition: ColumnElement[bool], **values: Any
                ) -> BedPool | None:
        # One statement: the row lock, the condition and the change are atomic on both databases.
        row = self.conn.execute(
            update(bed_pools).where(*_key(shelter_id, group), condition)
            .values(version=bed_pools.c.version + 1, **values).returning(*bed_pools.c)).mappings().first()
        return _pool(row) if row else None


class ReservationRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, r: Reservation) -> bool:
        """Records the outcome for a referral; False if one was recorded first (by a concurrent attempt)."""
        result = self.conn.execute(
            upsert_insert(self.conn, reservations).values(
                referral_id=r.referral_id, shelter_id=r.shelter_id, case_id=r.case_id,
                province_code=r.province_code, target_group=str(r.target_group or ""), status=str(r.status),
                hold_until=utc(r.hold_until), reason=r.reason)
            .on_conflict_do_nothing().returning(reservations.c.referral_id))
        # RETURNING rather than rowcount, which psycopg reports as -1 for an INSERT ... ON CONFLICT.
        return result.first() is not None

    def get(self, referral_id: str) -> Reservation | None:
        row = self.conn.execute(
            select(reservations).where(reservations.c.referral_id == referral_id)).mappings().first()
        return _reservation(row) if row else None

    def move(self, referral_id: str, from_status: ReservationStatus, to_status: ReservationStatus,
             reason: str = "") -> Reservation | None:
        """Moves a reservation on only if it is still in `from_status`: of two racing moves, one wins."""
        row = self.conn.execute(
            update(reservations)
            .where(reservations.c.referral_id == referral_id, reservations.c.status == str(from_status))
            .values(status=str(to_status), reason=reason).returning(*reservations.c)).mappings().first()
        return _reservation(row) if row else None

    def forget_case(self, referral_id: str) -> None:
        """The case was erased: the reservation keeps no link to it."""
        self.conn.execute(update(reservations).where(reservations.c.referral_id == referral_id).values(case_id=""))

    def due(self, now: datetime, limit: int) -> list[Reservation]:
        rows = self.conn.execute(
            select(reservations)
            .where(reservations.c.status == str(ReservationStatus.HELD), reservations.c.hold_until <= utc(now))
            .order_by(reservations.c.hold_until).limit(limit)).mappings()
        return [_reservation(r) for r in rows]

    def at_shelter(self, shelter_id: str, statuses: Sequence[ReservationStatus]) -> list[Reservation]:
        rows = self.conn.execute(
            select(reservations)
            .where(reservations.c.shelter_id == shelter_id, reservations.c.status.in_([str(s) for s in statuses]))
            .order_by(reservations.c.hold_until, reservations.c.referral_id)).mappings()
        return [_reservation(r) for r in rows]


def _key(shelter_id: str, group: TargetGroup) -> tuple[ColumnElement[bool], ...]:
    return bed_pools.c.shelter_id == shelter_id, bed_pools.c.target_group == str(group)


def _codes(values: Iterable[Accessibility]) -> str:
    return ",".join(sorted(values))


def _accessibility(codes: str) -> frozenset[Accessibility]:
    return frozenset(Accessibility(c) for c in codes.split(",") if c)


def _pool(r: Any) -> BedPool:
    return BedPool(shelter_id=r["shelter_id"], target_group=TargetGroup(r["target_group"]), capacity=r["capacity"],
                   reserved=r["reserved"], occupied=r["occupied"], confirmed_at=utc(r["confirmed_at"]),
                   version=r["version"])


def _reservation(r: Any) -> Reservation:
    return Reservation(referral_id=r["referral_id"], shelter_id=r["shelter_id"], case_id=r["case_id"],
                       province_code=r["province_code"],
                       target_group=TargetGroup(r["target_group"]) if r["target_group"] else None,
                       status=ReservationStatus(r["status"]), hold_until=utc(r["hold_until"]), reason=r["reason"])
