from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from referral.adapters.tables import (
    api_requests,
    cases,
    needs,
    providers,
    referral_history,
    referrals,
    schedules,
    service_areas,
    shelter_beds,
)
from referral.domain.model import (
    AgeGroup,
    BedState,
    Case,
    CaseState,
    ConsentState,
    Need,
    OpeningHours,
    Progress,
    Provider,
    Referral,
    Status,
    Survivor,
)
from refnet_platform.vocabulary import RiskLevel, ServiceType, Sex, TargetGroup


class Conflict(Exception):
    """The row changed since it was read: the caller's transaction must start over."""


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything refnet stores is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _inserted(conn: Connection, statement: Any) -> bool:
    """Runs an insert in a savepoint; False (and the transaction still usable) if the row already exists."""
    try:
        with conn.begin_nested():
            conn.execute(statement)
    except IntegrityError:
        return False
    return True


def _codes(values: Iterable[str]) -> str:
    return ",".join(sorted(values))


def _split(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


class DirectoryRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def save(self, provider: Provider, update_existing: bool) -> bool:
        """Adds the provider, or replaces it when update_existing; returns True when anything was written."""
        known = self.conn.execute(
            select(providers.c.provider_id).where(providers.c.provider_id == provider.provider_id)).first()
        if not known and not _inserted(self.conn, insert(providers).values(provider_id=provider.provider_id,
                                                                           **_provider_row(provider))):
            known = True  # another api replica seeding the same directory got there first
        if known and not update_existing:
            return False
        if known:
            self.conn.execute(update(providers).where(providers.c.provider_id == provider.provider_id)
                              .values(**_provider_row(provider)))
            self.conn.execute(delete(service_areas).where(service_areas.c.provider_id == provider.provider_id))
            self.conn.execute(delete(schedules).where(schedules.c.provider_id == provider.provider_id))
        if provider.service_areas:
            self.conn.execute(insert(service_areas), [{"provider_id": provider.provider_id, "area_code": code}
                                                      for code in sorted(provider.service_areas)])
        if provider.opening_hours:
            self.conn.execute(insert(schedules), [
                {"provider_id": provider.provider_id, "position": i, "weekdays": _codes(map(str, h.weekdays)),
                 "opens_at": h.opens_at, "closes_at": h.closes_at}
                for i, h in enumerate(provider.opening_hours)])
        return True

    def get(self, provider_id: str) -> Provider | None:
        found = self._load(select(providers).where(providers.c.provider_id == provider_id))
        return found[0] if found else None

    def all(self) -> list[Provider]:
        return self._load(select(providers))

    def in_province(self, province_code: str, service_type: ServiceType | None = None) -> list[Provider]:
        query = select(providers).where(providers.c.province_code == province_code)
        if service_type is not None:
            query = query.where(providers.c.service_type == str(service_type))
        return self._load(query)

    def reachable(self, service_type: ServiceType, provinces: Iterable[str], area_codes: Iterable[str]
                  ) -> list[Provider]:
        """Active providers of the service placed in one of `provinces` or serving one of `area_codes`."""
        serving = select(service_areas.c.provider_id).where(service_areas.c.area_code.in_(list(area_codes)))
        return self._load(select(providers).where(
            providers.c.service_type == str(service_type), providers.c.active.is_(True),
            or_(providers.c.province_code.in_(list(provinces)), providers.c.provider_id.in_(serving))))

    def _load(self, query: Any) -> list[Provider]:
        rows = list(self.conn.execute(query.order_by(providers.c.provider_id)).mappings())
        ids = [r["provider_id"] for r in rows]
        areas: dict[str, set[str]] = {}
        hours: dict[str, list[OpeningHours]] = {}
        if ids:
            for a in self.conn.execute(select(service_areas).where(service_areas.c.provider_id.in_(ids))):
                areas.setdefault(a.provider_id, set()).add(a.area_code)
            for s in self.conn.execute(select(schedules).where(schedules.c.provider_id.in_(ids))
                                       .order_by(schedules.c.provider_id, schedules.c.position)):
                hours.setdefault(s.provider_id, []).append(
                    OpeningHours.parse([int(d) for d in _split(s.weekdays)], s.opens_at, s.closes_at))
        return [_provider(r, frozenset(areas.get(r["provider_id"], ())), tuple(hours.get(r["provider_id"], ())))
                for r in rows]


class BedRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def free(self, shelter_ids: Iterable[str]) -> dict[str, int]:
        ids = [s for s in shelter_ids if s]
        if not ids:
            return {}
        rows = self.conn.execute(select(shelter_beds.c.shelter_id, shelter_beds.c.free)
                                 .where(shelter_beds.c.shelter_id.in_(ids)))
        return {r.shelter_id: r.free for r in rows}

    def figures(self) -> dict[str, tuple[int, int]]:
        """shelter id -> (free, capacity)."""
        return {r.shelter_id: (r.free, r.capacity) for r in self.conn.execute(select(shelter_beds))}

    def seed(self, shelter_id: str, capacity: int, now: datetime) -> None:
        """The directory's figure, until shelter reports its own."""
        if not self.conn.execute(select(shelter_beds.c.shelter_id).where(shelter_beds.c.shelter_id == shelter_id)
                                 ).first():
            _inserted(self.conn, insert(shelter_beds).values(shelter_id=shelter_id, capacity=capacity, free=capacity,
                                                             updated_at=now))

    def set(self, shelter_id: str, free: int, now: datetime, capacity: int | None = None) -> None:
        row = self.conn.execute(select(shelter_beds).where(shelter_beds.c.shelter_id == shelter_id)).first()
        if row is None:
            self.conn.execute(insert(shelter_beds).values(shelter_id=shelter_id, capacity=capacity or max(free, 0),
                                                          free=max(free, 0), updated_at=now))
            return
        capacity = row.capacity if capacity is None else capacity
        self.conn.execute(update(shelter_beds).where(shelter_beds.c.shelter_id == shelter_id).values(
            capacity=capacity, free=max(0, min(free, capacity)), updated_at=now))

    def adjust(self, shelter_id: str, delta: int, now: datetime) -> None:
        row = self.conn.execute(select(shelter_beds).where(shelter_beds.c.shelter_id == shelter_id)).first()
        if row is not None:
            self.set(shelter_id, row.free + delta, now)


class CaseRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, case_id: str, for_update: bool = False) -> Case | None:
        query = select(cases).where(cases.c.case_id == case_id)
        row = self.conn.execute(query.with_for_update() if for_update else query).mappings().first()
        if row is None:
            return None
        return Case(case_id=row["case_id"], province_code=row["province_code"], commune_code=row["commune_code"],
                    survivor=Survivor(row["is_child"], Sex(row["sex"]) if row["sex"] else None),
                    risk_level=RiskLevel(row["risk_level"]), emergency=row["emergency"],
                    case_worker_id=row["case_worker_id"], child_deadline=utc(row["child_deadline"]),
                    state=CaseState(row["state"]))

    def save(self, case: Case) -> None:
        values = {"province_code": case.province_code, "commune_code": case.commune_code,
                  "is_child": case.survivor.is_child, "sex": str(case.survivor.sex or ""),
                  "risk_level": str(case.risk_level), "emergency": case.emergency,
                  "case_worker_id": case.case_worker_id, "child_deadline": case.child_deadline,
                  "state": str(case.state)}
        done = self.conn.execute(update(cases).where(cases.c.case_id == case.case_id).values(**values))
        if not done.rowcount:
            self.conn.execute(insert(cases).values(case_id=case.case_id, **values))

    def needs(self, case_id: str) -> list[Need]:
        return [_need(r) for r in self.conn.execute(
            select(needs).where(needs.c.case_id == case_id).order_by(needs.c.need_id)).mappings()]

    def need(self, need_id: str) -> Need | None:
        row = self.conn.execute(select(needs).where(needs.c.need_id == need_id)).mappings().first()
        return _need(row) if row else None

    def save_need(self, need: Need) -> None:
        values = {"case_id": need.case_id, "service_type": str(need.service_type), "consent": str(need.consent),
                  "sectors": _codes(need.sectors), "expires_at": need.expires_at, "consent_id": need.consent_id,
                  "withdrawn_consent_id": need.withdrawn_consent_id}
        done = self.conn.execute(update(needs).where(needs.c.need_id == need.need_id).values(**values))
        if not done.rowcount:
            self.conn.execute(insert(needs).values(need_id=need.need_id, **values))


REFERRAL_FIELDS = ("referral_id", "case_id", "need_id", "provider_id", "province_code", "emergency",
                   "case_worker_id", "requested_at", "shelter_id", "reason", "accept_by", "start_by", "attempt",
                   "previous_referral_id", "provider_province_code", "updated_at", "version")


class ReferralRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, referral: Referral) -> None:
        self.conn.execute(insert(referrals).values(**_referral_row(referral)))
        referral.stored_version = referral.version

    def save(self, referral: Referral) -> None:
        """Writes a changed referral; Conflict if someone else changed it since it was read."""
        done = self.conn.execute(update(referrals).where(
            referrals.c.referral_id == referral.referral_id, referrals.c.version == referral.stored_version,
        ).values(**_referral_row(referral)))
        if done.rowcount != 1:
            raise Conflict(referral.referral_id)
        referral.stored_version = referral.version

    def get(self, referral_id: str, for_update: bool = False) -> Referral | None:
        query = select(referrals).where(referrals.c.referral_id == referral_id)
        row = self.conn.execute(query.with_for_update() if for_update else query).mappings().first()
        return _referral(row) if row else None

    def for_need(self, need_id: str) -> list[Referral]:
        return self._many(select(referrals).where(referrals.c.need_id == need_id))

    def for_case(self, case_id: str) -> list[Referral]:
        return self._many(select(referrals).where(referrals.c.case_id == case_id))

    def successor(self, referral_id: str) -> Referral | None:
        found = self._many(select(referrals).where(referrals.c.previous_referral_id == referral_id))
        return found[-1] if found else None

    def page(self, *, provider_id: str | None = None, case_id: str = "", statuses: Iterable[Status] = (),
             after_id: str = "", limit: int = 500) -> list[Referral]:
        """Oldest first (ids are UUIDv7, so id order is creation order), after `after_id`."""
        query = select(referrals)
        if provider_id is not None:
            query = query.where(referrals.c.provider_id == provider_id)
        if case_id:
            query = query.where(referrals.c.case_id == case_id)
        wanted = [str(s) for s in statuses]
        if wanted:
            query = query.where(referrals.c.status.in_(wanted))
        if after_id:
            query = query.where(referrals.c.referral_id > after_id)
        return self._many(query.limit(limit))

    def changed_since(self, provider_id: str, since: datetime, after_id: str, limit: int,
                      statuses: Iterable[Status] = ()) -> list[Referral]:
        """The provider's referrals changed at or after `since`, in change order."""
        query = select(referrals).where(
            referrals.c.provider_id == provider_id,
            or_(referrals.c.updated_at > since,
                and_(referrals.c.updated_at == since, referrals.c.referral_id > after_id)))
        wanted = [str(s) for s in statuses]
        if wanted:
            query = query.where(referrals.c.status.in_(wanted))
        rows = self.conn.execute(query.order_by(referrals.c.updated_at, referrals.c.referral_id).limit(limit))
        return [_referral(r) for r in rows.mappings()]

    def escalations(self, province_code: str, unresolved_only: bool, after_id: str, limit: int) -> list[Referral]:
        query = select(referrals).where(referrals.c.province_code == province_code,
                                        referrals.c.status == str(Status.ESCALATED))
        if unresolved_only:
            later = aliased(referrals)
            query = query.where(~exists().where(later.c.previous_referral_id == referrals.c.referral_id))
        if after_id:
            query = query.where(referrals.c.referral_id > after_id)
        return self._many(query.limit(limit))

    def due(self, now: datetime, limit: int) -> list[str]:
        rows = self.conn.execute(select(referrals.c.referral_id).where(referrals.c.due_at <= now)
                                 .order_by(referrals.c.due_at).limit(limit))
        return [r.referral_id for r in rows]

    def record(self, referral_id: str, at: datetime, from_status: Status | None, to_status: Status, reason: str,
               actor: str) -> None:
        self.conn.execute(insert(referral_history).values(
            referral_id=referral_id, at=at, from_status=str(from_status or ""), to_status=str(to_status),
            reason=reason, actor=actor))

    def history(self, referral_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(select(referral_history).where(referral_history.c.referral_id == referral_id)
                                 .order_by(referral_history.c.id)).mappings()
        return [dict(r) for r in rows]

    def _many(self, query: Any) -> list[Referral]:
        return [_referral(r) for r in self.conn.execute(query.order_by(referrals.c.referral_id)).mappings()]


class RequestRepository:
    """Idempotency keys: a repeated request id changes nothing."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, caller_id: str, request_id: str) -> tuple[str, str] | None:
        row = self.conn.execute(select(api_requests.c.operation, api_requests.c.referral_id).where(
            api_requests.c.caller_id == caller_id, api_requests.c.request_id == request_id)).first()
        return (row.operation, row.referral_id) if row else None

    def add(self, caller_id: str, request_id: str, operation: str, referral_id: str, now: datetime) -> None:
        self.conn.execute(insert(api_requests).values(caller_id=caller_id, request_id=request_id,
                                                      operation=operation, referral_id=referral_id, created_at=now))


def _provider_row(p: Provider) -> dict[str, Any]:
    return {"name": p.name, "sector": p.sector, "service_type": str(p.service_type),
            "province_code": p.province_code, "commune_code": p.commune_code, "public_contact": p.public_contact,
            "open_24_7": p.open_24_7, "shelter_id": p.shelter_id, "organization_id": p.organization_id,
            "organization_name": p.organization_name, "description": p.description, "age_group": str(p.age_group),
            "sexes": _codes(map(str, p.sexes)), "target_groups": _codes(map(str, p.target_groups)),
            "beds_capacity": p.beds_capacity, "active": p.active}


def _provider(r: Any, areas: frozenset[str], hours: tuple[OpeningHours, ...]) -> Provider:
    return Provider(
        provider_id=r["provider_id"], name=r["name"], sector=r["sector"], service_type=ServiceType(r["service_type"]),
        province_code=r["province_code"], commune_code=r["commune_code"], public_contact=r["public_contact"],
        open_24_7=r["open_24_7"], shelter_id=r["shelter_id"], organization_id=r["organization_id"],
        organization_name=r["organization_name"], description=r["description"], age_group=AgeGroup(r["age_group"]),
        sexes=frozenset(Sex(s) for s in _split(r["sexes"])),
        target_groups=frozenset(TargetGroup(t) for t in _split(r["target_groups"])),
        service_areas=areas, opening_hours=hours, beds_capacity=r["beds_capacity"], active=r["active"])


def _need(r: Any) -> Need:
    return Need(need_id=r["need_id"], case_id=r["case_id"], service_type=ServiceType(r["service_type"]),
                consent=ConsentState(r["consent"]), sectors=frozenset(_split(r["sectors"])),
                expires_at=utc(r["expires_at"]), consent_id=r["consent_id"],
                withdrawn_consent_id=r["withdrawn_consent_id"])


def _referral_row(r: Referral) -> dict[str, Any]:
    return {**{f: getattr(r, f) for f in REFERRAL_FIELDS}, "service_type": str(r.service_type),
            "status": str(r.status), "risk_level": str(r.risk_level), "due_at": r.due_at, "bed": str(r.bed),
            "progress": str(r.progress or "")}


def _referral(r: Any) -> Referral:
    referral = Referral(
        **{f: r[f] for f in REFERRAL_FIELDS}, service_type=ServiceType(r["service_type"]), status=Status(r["status"]),
        risk_level=RiskLevel(r["risk_level"]), bed=BedState(r["bed"]),
        progress=Progress(r["progress"]) if r["progress"] else None)
    for name in ("requested_at", "accept_by", "start_by", "updated_at"):
        setattr(referral, name, utc(getattr(referral, name)))
    referral.stored_version = referral.version
    return referral
