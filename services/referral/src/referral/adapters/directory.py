"""The directory's repository: providers as HSDS loads them, and the process's cached copy routing reads
(see DirectoryCache)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from referral.adapters.repository import codes, inserted, split
from referral.adapters.tables import directory_version, duty_phones, providers, schedules, service_areas
from referral.domain.providers import AgeGroup, DutyPhone, OpeningHours, Provider
from refnet_platform.clock import system_clock
from refnet_platform.vocabulary import ServiceType, Sex, TargetGroup

_STAMP = select(directory_version.c.stamp).where(directory_version.c.id == 1)
_RESTAMP = update(directory_version).where(directory_version.c.id == 1)
_PROVIDER_EXISTS = select(providers.c.provider_id).where(providers.c.provider_id == bindparam("provider_id"))
_INSERT_PROVIDER = insert(providers)
_UPDATE_PROVIDER = update(providers).where(providers.c.provider_id == bindparam("_provider_id"))
_DELETE_AREAS = delete(service_areas).where(service_areas.c.provider_id == bindparam("provider_id"))
_DELETE_SCHEDULES = delete(schedules).where(schedules.c.provider_id == bindparam("provider_id"))
_INSERT_AREA = insert(service_areas)
_INSERT_SCHEDULE = insert(schedules)
_ALL_PROVIDERS = select(providers).order_by(providers.c.provider_id)
_ALL_AREAS = select(service_areas)
_ALL_SCHEDULES = select(schedules).order_by(schedules.c.provider_id, schedules.c.position)


@dataclass(frozen=True)
class Directory:
    """The whole directory as of one stamp, indexed for routing. Providers are immutable, so every thread
    may share it."""

    stamp: str
    by_id: Mapping[str, Provider]
    # Active providers by (service, province they are placed in) and by (service, area code they serve).
    placed: Mapping[tuple[ServiceType, str], tuple[Provider, ...]]
    serving: Mapping[tuple[ServiceType, str], tuple[Provider, ...]]
    # reachable()'s answers for this copy: every case in a place asks the same few (a few thousand at most,
    # one per commune and service), dropped with the copy when the directory changes.
    _reachable: dict[tuple[ServiceType, tuple[str, ...], tuple[str, ...]], tuple[Provider, ...]] = field(
        default_factory=dict, compare=False, repr=False)

    def reachable(self, service_type: ServiceType, provinces: tuple[str, ...], area_codes: tuple[str, ...]
                  ) -> tuple[Provider, ...]:
        """Active providers of the service placed in one of `provinces` or serving one of `area_codes`, by id."""
        key = (service_type, provinces, area_codes)
        found = self._reachable.get(key)
        if found is None:
            by_id = {p.provider_id: p for code in provinces for p in self.placed.get((service_type, code), ())}
            by_id.update((p.provider_id, p) for code in area_codes
                         for p in self.serving.get((service_type, code), ()))
            found = self._reachable[key] = tuple(by_id[pid] for pid in sorted(by_id))
        return found

    @classmethod
    def of(cls, stamp: str, found: Iterable[Provider]) -> Directory:
        ordered = sorted(found, key=lambda p: p.provider_id)
        placed: dict[tuple[ServiceType, str], list[Provider]] = defaultdict(list)
        serving: dict[tuple[ServiceType, str], list[Provider]] = defaultdict(list)
        for p in ordered:
            if p.active:
                placed[p.service_type, p.province_code].append(p)
                for code in p.service_areas:
                    serving[p.service_type, code].append(p)
        return cls(stamp, {p.provider_id: p for p in ordered}, {k: tuple(v) for k, v in placed.items()},
                   {k: tuple(v) for k, v in serving.items()})

    @classmethod
    def read(cls, conn: Connection, stamp: str) -> Directory:
        areas: dict[str, set[str]] = defaultdict(set)
        hours: dict[str, list[OpeningHours]] = defaultdict(list)
        for a in conn.execute(_ALL_AREAS):
            areas[a.provider_id].add(a.area_code)
        for s in conn.execute(_ALL_SCHEDULES):
            hours[s.provider_id].append(
                OpeningHours.parse([int(d) for d in split(s.weekdays)], s.opens_at, s.closes_at))
        return cls.of(stamp, (_provider(r, frozenset(areas[r["provider_id"]]), tuple(hours[r["provider_id"]]))
                              for r in conn.execute(_ALL_PROVIDERS).mappings()))


# conn.info key: the directory copy a connection's current transaction has already checked.
_CHECKED = "referral.directory_checked"


class DirectoryCache:
    """The process's copy of the directory, shared by its units of work. Each transaction that reads the
    directory first reads its stamp (one row, by primary key) and gets this copy, reloaded only if the stamp
    is not the one it was loaded at. Every change writes a new random stamp in its own transaction, so a
    copy read inside a transaction that then rolled back never matches a committed stamp.

    The units of work of one batch transaction (the consumer's savepoints) check the stamp once: a change
    committed meanwhile is routed by from the next batch, as if it had committed a few milliseconds later."""

    def __init__(self) -> None:
        self._copy: Directory | None = None

    def current(self, conn: Connection) -> Directory:
        transaction = conn.get_transaction()
        checked = conn.info.get(_CHECKED)
        remember = transaction is not None
        if checked is not None and checked[0] is transaction and remember:
            if checked[1] is self:
                directory: Directory = checked[2]
                return directory
            remember = checked[1] is not None  # None: this transaction changed the directory
        stamp = conn.execute(_STAMP).scalar_one()
        copy = self._copy
        if copy is None or copy.stamp != stamp:
            copy = self._copy = Directory.read(conn, stamp)
        if remember:
            # The transaction object itself is kept (not its id): a later transaction is never taken for it.
            conn.info[_CHECKED] = (transaction, self, copy)
        return copy

    @staticmethod
    def changed(conn: Connection) -> None:
        """This transaction changed the directory: each of its reads checks the stamp again (a savepoint
        that changed it may yet roll back)."""
        conn.info[_CHECKED] = (conn.get_transaction(), None, None)


class DirectoryRepository:
    def __init__(self, conn: Connection, cache: DirectoryCache) -> None:
        self.conn = conn
        self.cache = cache
        self._directory: Directory | None = None
        self._restamped = False

    @property
    def directory(self) -> Directory:
        """The directory as this unit of work sees it: the stamp is checked once, at the first read."""
        if self._directory is None:
            self._directory = self.cache.current(self.conn)
        return self._directory

    def save(self, provider: Provider, update_existing: bool) -> bool:
        """Adds the provider, or replaces it when update_existing; returns True when anything was written."""
        pid = provider.provider_id
        row = _provider_row(provider)
        known = self.conn.execute(_PROVIDER_EXISTS, {"provider_id": pid}).first() is not None
        if not known and not inserted(self.conn, _INSERT_PROVIDER, {"provider_id": pid, **row}):
            known = True  # another api replica seeding the same directory got there first
        if known and not update_existing:
            return False
        if known:
            self.conn.execute(_UPDATE_PROVIDER, {"_provider_id": pid, **row})
            self.conn.execute(_DELETE_AREAS, {"provider_id": pid})
            self.conn.execute(_DELETE_SCHEDULES, {"provider_id": pid})
        if provider.service_areas:
            self.conn.execute(_INSERT_AREA, [{"provider_id": pid, "area_code": code}
                                             for code in sorted(provider.service_areas)])
        if provider.opening_hours:
            self.conn.execute(_INSERT_SCHEDULE, [
                {"provider_id": pid, "position": i, "weekdays": codes(map(str, h.weekdays)),
                 "opens_at": h.opens_at, "closes_at": h.closes_at}
                for i, h in enumerate(provider.opening_hours)])
        if not self._restamped:
            # Every process's copy is stale from this commit on: they reload at their next read.
            self.conn.execute(_RESTAMP, {"stamp": str(uuid.uuid4()), "changed_at": system_clock()})
            self._restamped = True
        self._directory = None
        self.cache.changed(self.conn)
        return True

    def get(self, provider_id: str) -> Provider | None:
        return self.directory.by_id.get(provider_id)

    def save_duty_phone(self, duty: DutyPhone) -> None:
        self.conn.execute(delete(duty_phones).where(duty_phones.c.phone == duty.phone))
        self.conn.execute(insert(duty_phones).values(phone=duty.phone, provider_id=duty.provider_id,
                                                     language=duty.language))

    def duty_phone(self, phone: str) -> DutyPhone | None:
        row = self.conn.execute(select(duty_phones).where(duty_phones.c.phone == phone)).mappings().first()
        return DutyPhone(row["phone"], row["provider_id"], row["language"]) if row else None

    def all(self) -> list[Provider]:
        return list(self.directory.by_id.values())

    def in_province(self, province_code: str, service_type: ServiceType | None = None) -> list[Provider]:
        return [p for p in self.directory.by_id.values() if p.province_code == province_code
                and (service_type is None or p.service_type is service_type)]

    def reachable(self, service_type: ServiceType, provinces: tuple[str, ...], area_codes: tuple[str, ...]
                  ) -> tuple[Provider, ...]:
        return self.directory.reachable(service_type, provinces, area_codes)


def _provider_row(p: Provider) -> dict[str, Any]:
    return {"name": p.name, "sector": p.sector, "service_type": str(p.service_type),
            "province_code": p.province_code, "commune_code": p.commune_code, "public_contact": p.public_contact,
            "open_24_7": p.open_24_7, "shelter_id": p.shelter_id, "organization_id": p.organization_id,
            "organization_name": p.organization_name, "description": p.description, "age_group": str(p.age_group),
            "sexes": codes(map(str, p.sexes)), "target_groups": codes(map(str, p.target_groups)),
            "beds_capacity": p.beds_capacity, "active": p.active,
            "accessibility": codes(sorted(p.accessibility))}


def _provider(r: Any, areas: frozenset[str], hours: tuple[OpeningHours, ...]) -> Provider:
    return Provider(
        provider_id=r["provider_id"], name=r["name"], sector=r["sector"], service_type=ServiceType(r["service_type"]),
        province_code=r["province_code"], commune_code=r["commune_code"], public_contact=r["public_contact"],
        open_24_7=r["open_24_7"], shelter_id=r["shelter_id"], organization_id=r["organization_id"],
        organization_name=r["organization_name"], description=r["description"], age_group=AgeGroup(r["age_group"]),
        sexes=frozenset(Sex(s) for s in split(r["sexes"])),
        target_groups=frozenset(TargetGroup(t) for t in split(r["target_groups"])),
        service_areas=areas, opening_hours=hours, beds_capacity=r["beds_capacity"], active=r["active"],
        accessibility=frozenset(split(r["accessibility"])))
