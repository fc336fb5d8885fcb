"""Referral's repositories. The worker routes a case in a handful of statements: the directory comes from
the process's cached copy (referral.adapters.directory), statements are built once here rather than per call,
rows read are not read again, and new needs, referrals and history rows are written together (one executemany
per table) when the unit of work commits."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from referral.adapters.tables import (
    cases,
    needs,
    referral_history,
    referrals,
    shelter_beds,
)
from referral.domain.model import (
    BedState,
    Case,
    CaseState,
    ConsentState,
    Need,
    Progress,
    Referral,
    Status,
    Survivor,
)
from refnet_platform.prepared import prepared_insert
from refnet_platform.vocabulary import RiskLevel, ServiceType, Sex, TargetGroup


class Conflict(Exception):
    """The row changed since it was read: the caller's transaction must start over."""


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything refnet stores is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def inserted(conn: Connection, statement: Any, values: Mapping[str, Any]) -> bool:
    """Runs an insert in a savepoint; False (and the transaction still usable) if the row already exists."""
    try:
        with conn.begin_nested():
            conn.execute(statement, values)
    except IntegrityError:
        return False
    return True


def codes(values: Iterable[str]) -> str:
    return ",".join(sorted(values))


def split(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


# --- live beds ---------------------------------------------------------------------------------

_BEDS = select(shelter_beds).where(shelter_beds.c.shelter_id.in_(bindparam("ids", expanding=True)))
_INSERT_BEDS = insert(shelter_beds)
_UPDATE_BEDS = update(shelter_beds).where(shelter_beds.c.shelter_id == bindparam("_shelter_id"),
                                          shelter_beds.c.target_group == bindparam("_target_group"))

Pool = tuple[str, TargetGroup]


class BedRepository:
    """One row per bed pool (shelter id, target group), as shelter keeps them. Read by shelter id, the
    primary key's first column: never scanned."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def free(self, shelter_ids: Iterable[str]) -> dict[Pool, int]:
        return {pool: free for pool, (free, _) in self.figures(shelter_ids).items()}

    def figures(self, shelter_ids: Iterable[str]) -> dict[Pool, tuple[int, int]]:
        """(shelter id, group) -> (free, capacity), for every pool of the shelters named that has figures."""
        ids = sorted({s for s in shelter_ids if s})
        if not ids:
            return {}
        return {(r.shelter_id, TargetGroup(r.target_group)): (r.free, r.capacity)
                for r in self.conn.execute(_BEDS, {"ids": ids})}

    def seed(self, shelter_id: str, group: TargetGroup, capacity: int, now: datetime) -> None:
        """The directory's figure, until shelter reports the pool's own."""
        if (shelter_id, group) not in self.figures([shelter_id]):
            inserted(self.conn, _INSERT_BEDS, {"shelter_id": shelter_id, "target_group": str(group),
                                                "capacity": capacity, "free": capacity, "updated_at": now})

    def set(self, shelter_id: str, group: TargetGroup, free: int, now: datetime, capacity: int | None = None
            ) -> None:
        self._write(shelter_id, group, self.figures([shelter_id]).get((shelter_id, group)), free, now, capacity)

    def adjust(self, shelter_id: str, group: TargetGroup, delta: int, now: datetime) -> None:
        known = self.figures([shelter_id]).get((shelter_id, group))
        if known is not None:
            self._write(shelter_id, group, known, known[0] + delta, now)

    def _write(self, shelter_id: str, group: TargetGroup, known: tuple[int, int] | None, free: int, now: datetime,
               capacity: int | None = None) -> None:
        if known is None:
            self.conn.execute(_INSERT_BEDS, {"shelter_id": shelter_id, "target_group": str(group),
                                             "capacity": capacity or max(free, 0), "free": max(free, 0),
                                             "updated_at": now})
            return
        capacity = known[1] if capacity is None else capacity
        self.conn.execute(_UPDATE_BEDS, {"_shelter_id": shelter_id, "_target_group": str(group),
                                         "capacity": capacity, "free": max(0, min(free, capacity)),
                                         "updated_at": now})


# --- cases and needs ---------------------------------------------------------------------------

_CASE = select(cases).where(cases.c.case_id == bindparam("case_id"))
_CASE_FOR_UPDATE = _CASE.with_for_update()
_INSERT_CASE = insert(cases)
# A case not seen before is inserted without reading first (a new case is what routing sees most). Prepared, as
# every routed case runs it: SQLAlchemy's per-execute work is about half of such a statement's cost.
_INSERT_NEW_CASE = prepared_insert(cases, conflict="ON CONFLICT (case_id) DO NOTHING")
_UPDATE_CASE = update(cases).where(cases.c.case_id == bindparam("_case_id"))
_NEEDS_OF_CASE = select(needs).where(needs.c.case_id == bindparam("case_id")).order_by(needs.c.need_id)
_NEEDS = select(needs).where(needs.c.need_id.in_(bindparam("ids", expanding=True)))
_INSERT_NEED = insert(needs)
# A new case's needs, inserted before routing without reading first: one stored already (a consent event that
# overtook the registration) is left as it is, and shows in the row count.
_INSERT_NEW_NEEDS = prepared_insert(needs, conflict="ON CONFLICT (need_id) DO NOTHING")
_UPDATE_NEED = update(needs).where(needs.c.need_id == bindparam("_need_id"))


class CaseRepository:
    """A case or need read (or written) in this unit of work is updated when saved, any other inserted; new
    needs are inserted together at flush(), which the unit of work calls before it commits."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._stored_cases: set[str] = set()
        self._stored_needs: set[str] = set()
        self._new_needs: dict[str, dict[str, Any]] = {}

    def get(self, case_id: str, for_update: bool = False) -> Case | None:
        row = self.conn.execute(_CASE_FOR_UPDATE if for_update else _CASE, {"case_id": case_id}).mappings().first()
        if row is None:
            return None
        self._stored_cases.add(case_id)
        return Case(case_id=row["case_id"], province_code=row["province_code"], commune_code=row["commune_code"],
                    survivor=Survivor(row["is_child"], Sex(row["sex"]) if row["sex"] else None,
                                      frozenset(c for c in row["accessibility_needs"].split(",") if c)),
                    risk_level=RiskLevel(row["risk_level"]), emergency=row["emergency"],
                    case_worker_id=row["case_worker_id"], child_deadline=utc(row["child_deadline"]),
                    state=CaseState(row["state"]))

    def insert_new(self, case: Case) -> bool:
        """Inserts the case unless its id is stored already (then False: get() it and save() instead)."""
        done = _INSERT_NEW_CASE.execute(self.conn, {"case_id": case.case_id, **_case_row(case)})
        if done.rowcount != 1:
            return False
        self._stored_cases.add(case.case_id)
        return True

    def save(self, case: Case) -> None:
        values = _case_row(case)
        if case.case_id in self._stored_cases:
            self.conn.execute(_UPDATE_CASE, {"_case_id": case.case_id, **values})
        else:
            self.conn.execute(_INSERT_CASE, {"case_id": case.case_id, **values})
            self._stored_cases.add(case.case_id)

    def needs(self, case_id: str) -> list[Need]:
        self.flush()
        found = [_need(r) for r in self.conn.execute(_NEEDS_OF_CASE, {"case_id": case_id}).mappings()]
        self._stored_needs.update(n.need_id for n in found)
        return found

    def need(self, need_id: str) -> Need | None:
        return self.needs_by_id([need_id]).get(need_id)

    def needs_by_id(self, need_ids: Iterable[str]) -> dict[str, Need]:
        """The needs of these ids that are stored, in one read."""
        self.flush()
        ids = sorted(set(need_ids))
        found = {r["need_id"]: _need(r) for r in self.conn.execute(_NEEDS, {"ids": ids}).mappings()} if ids else {}
        self._stored_needs.update(found)
        return found

    def insert_new_needs(self, found: Iterable[Need]) -> bool:
        """Inserts these needs (a new case's) in one statement, unless stored already: True if every one was
        new; False if one was stored before (that one left as it was: read it, then save() it)."""
        rows = [{"need_id": need.need_id, **_need_row(need)} for need in found]
        if not rows:
            return True
        self.flush()
        done = _INSERT_NEW_NEEDS.execute(self.conn, rows)
        self._stored_needs.update(row["need_id"] for row in rows)  # each is stored now, one way or the other
        # A driver that cannot count an executemany's rows reports less, never more: the read is then made.
        return done.rowcount == len(rows)

    def save_need(self, need: Need) -> None:
        values = _need_row(need)
        if need.need_id in self._stored_needs:
            self.conn.execute(_UPDATE_NEED, {"_need_id": need.need_id, **values})
        else:
            self._new_needs[need.need_id] = {"need_id": need.need_id, **values}

    def flush(self) -> None:
        if self._new_needs:
            self.conn.execute(_INSERT_NEED, list(self._new_needs.values()))
            self._stored_needs.update(self._new_needs)
            self._new_needs.clear()


# --- referrals ---------------------------------------------------------------------------------

REFERRAL_FIELDS = ("referral_id", "case_id", "need_id", "provider_id", "province_code", "emergency",
                   "case_worker_id", "requested_at", "shelter_id", "reason", "accept_by", "start_by", "attempt",
                   "previous_referral_id", "provider_province_code", "updated_at", "version")

_REFERRAL = select(referrals).where(referrals.c.referral_id == bindparam("referral_id"))
_REFERRAL_FOR_UPDATE = _REFERRAL.with_for_update()
_REFERRALS_OF_NEEDS = select(referrals).where(referrals.c.need_id.in_(bindparam("ids", expanding=True))
                                               ).order_by(referrals.c.referral_id)
_REFERRALS_OF_CASE = select(referrals).where(referrals.c.case_id == bindparam("case_id")
                                              ).order_by(referrals.c.referral_id)
_SUCCESSORS = select(referrals).where(referrals.c.previous_referral_id == bindparam("referral_id")
                                      ).order_by(referrals.c.referral_id)
# Every routed case writes its referrals and their first history rows (prepared, as the new case and needs).
_INSERT_REFERRAL = prepared_insert(referrals)
_UPDATE_REFERRAL = update(referrals).where(referrals.c.referral_id == bindparam("_referral_id"),
                                           referrals.c.version == bindparam("_stored_version"))
_INSERT_HISTORY = prepared_insert(referral_history,
                                  ["referral_id", "at", "from_status", "to_status", "reason", "actor"])
_HISTORY = select(referral_history).where(referral_history.c.referral_id == bindparam("referral_id")
                                          ).order_by(referral_history.c.id)


class ReferralRepository:
    """New referrals (changed in place until written) and history rows are inserted together at flush(),
    which every read here and the unit of work's commit call first."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._new: dict[str, dict[str, Any]] = {}
        self._history: list[dict[str, Any]] = []

    def add(self, referral: Referral) -> None:
        self._new[referral.referral_id] = _referral_row(referral)
        referral.stored_version = referral.version

    def save(self, referral: Referral) -> None:
        """Writes a changed referral; Conflict if someone else changed it since it was read."""
        pending = self._new.get(referral.referral_id)
        if pending is not None:
            if pending["version"] != referral.stored_version:
                raise Conflict(referral.referral_id)
            self._new[referral.referral_id] = _referral_row(referral)
        else:
            done = self.conn.execute(_UPDATE_REFERRAL, {"_referral_id": referral.referral_id,
                                                        "_stored_version": referral.stored_version,
                                                        **_referral_row(referral)})
            if done.rowcount != 1:
                raise Conflict(referral.referral_id)
        referral.stored_version = referral.version

    def flush(self) -> None:
        if self._new:
            _INSERT_REFERRAL.execute(self.conn, list(self._new.values()))
            self._new.clear()
        if self._history:
            _INSERT_HISTORY.execute(self.conn, self._history)
            self._history = []

    def get(self, referral_id: str, for_update: bool = False) -> Referral | None:
        found = self._many(_REFERRAL_FOR_UPDATE if for_update else _REFERRAL, {"referral_id": referral_id})
        return found[0] if found else None

    def for_need(self, need_id: str) -> list[Referral]:
        return self.for_needs([need_id]).get(need_id, [])

    def for_needs(self, need_ids: Iterable[str]) -> dict[str, list[Referral]]:
        """Each need's referrals, oldest first, in one read; needs without any are left out."""
        ids = sorted(set(need_ids))
        found: dict[str, list[Referral]] = defaultdict(list)
        for r in self._many(_REFERRALS_OF_NEEDS, {"ids": ids}) if ids else ():
            found[r.need_id].append(r)
        return found

    def for_case(self, case_id: str) -> list[Referral]:
        return self._many(_REFERRALS_OF_CASE, {"case_id": case_id})

    def successor(self, referral_id: str) -> Referral | None:
        found = self._many(_SUCCESSORS, {"referral_id": referral_id})
        return found[-1] if found else None

    def page(self, *, provider_id: str | None = None, case_id: str = "", statuses: Iterable[Status] = (),
             after_id: str = "", limit: int = 500, provinces: Iterable[str] | None = None) -> list[Referral]:
        """Oldest first (ids are UUIDv7, so id order is creation order), after `after_id`; only in `provinces`
        when given."""
        query = select(referrals)
        if provider_id is not None:
            query = query.where(referrals.c.provider_id == provider_id)
        if provinces is not None:
            query = query.where(referrals.c.province_code.in_(sorted(provinces)))
        if case_id:
            query = query.where(referrals.c.case_id == case_id)
        wanted = [str(s) for s in statuses]
        if wanted:
            query = query.where(referrals.c.status.in_(wanted))
        if after_id:
            query = query.where(referrals.c.referral_id > after_id)
        return self._many(query.order_by(referrals.c.referral_id).limit(limit))

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
        return self._many(query.order_by(referrals.c.updated_at, referrals.c.referral_id).limit(limit))

    def escalations(self, province_code: str, unresolved_only: bool, after_id: str, limit: int) -> list[Referral]:
        query = select(referrals).where(referrals.c.province_code == province_code,
                                        referrals.c.status == str(Status.ESCALATED))
        if unresolved_only:
            later = aliased(referrals)
            query = query.where(~exists().where(later.c.previous_referral_id == referrals.c.referral_id))
        if after_id:
            query = query.where(referrals.c.referral_id > after_id)
        return self._many(query.order_by(referrals.c.referral_id).limit(limit))

    def due(self, now: datetime, limit: int) -> list[str]:
        self.flush()
        rows = self.conn.execute(select(referrals.c.referral_id).where(referrals.c.due_at <= now)
                                 .order_by(referrals.c.due_at).limit(limit))
        return [r.referral_id for r in rows]

    def record(self, referral_id: str, at: datetime, from_status: Status | None, to_status: Status, reason: str,
               actor: str) -> None:
        self._history.append({"referral_id": referral_id, "at": at, "from_status": str(from_status or ""),
                              "to_status": str(to_status), "reason": reason, "actor": actor})

    def history(self, referral_id: str) -> list[dict[str, Any]]:
        self.flush()
        return [dict(r) for r in self.conn.execute(_HISTORY, {"referral_id": referral_id}).mappings()]

    def by_short_reference(self, provider_id: str, code: str) -> list[Referral]:
        """The provider's referrals whose id ends in these 8 hex digits (the short reference its notices name)."""
        return self._many(select(referrals).where(referrals.c.provider_id == provider_id,
                                                  referrals.c.referral_id.like(f"%{code.lower()}"))
                          .order_by(referrals.c.referral_id))

    def _many(self, query: Any, params: Mapping[str, Any] | None = None) -> list[Referral]:
        self.flush()
        return [_referral(r) for r in self.conn.execute(query, params).mappings()]


def _case_row(case: Case) -> dict[str, Any]:
    return {"province_code": case.province_code, "commune_code": case.commune_code,
            "is_child": case.survivor.is_child, "sex": str(case.survivor.sex or ""),
            "risk_level": str(case.risk_level), "emergency": case.emergency,
            "case_worker_id": case.case_worker_id, "child_deadline": case.child_deadline, "state": str(case.state),
            "accessibility_needs": ",".join(sorted(case.survivor.accessibility_needs))}


def _need_row(need: Need) -> dict[str, Any]:
    return {"case_id": need.case_id, "service_type": str(need.service_type), "consent": str(need.consent),
            "sectors": codes(need.sectors), "expires_at": need.expires_at, "consent_id": need.consent_id,
            "withdrawn_consent_id": need.withdrawn_consent_id}


def _need(r: Any) -> Need:
    return Need(need_id=r["need_id"], case_id=r["case_id"], service_type=ServiceType(r["service_type"]),
                consent=ConsentState(r["consent"]), sectors=frozenset(split(r["sectors"])),
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
