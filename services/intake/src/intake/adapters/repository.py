from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Connection, DateTime, and_, bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy import case as sql_case

from intake.adapters.crypto import Vault
from intake.adapters.tables import (
    assessments,
    audit_log,
    calls,
    case_keys,
    case_personal_data,
    case_reviews,
    cases,
    consent_notes,
    consents,
    contact_phones,
    follow_ups,
    needs,
    plan_goals,
    referrals,
    sms_stops,
)
from intake.domain.contact_reads import REFERRAL_REQUESTED, AuditEntry, ReferralRecord
from intake.domain.model import (
    Call,
    CallChannel,
    CallDetails,
    CallOutcome,
    CallTopic,
    Case,
    CaseStatus,
    CaseStep,
    CloseOutcome,
    CloseReason,
    Consent,
    ConsentGiver,
    Contact,
    Disability,
    LegalBasis,
    Need,
    Place,
    Survivor,
)
from refnet_platform.prepared import PreparedStatement
from refnet_platform.vocabulary import CaseType, RiskLevel, ServiceType, Sex

# A case with no deadline sorts last in the case list (cases.due_order).
NO_DEADLINE = datetime(9999, 12, 31, tzinfo=UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything intake stores is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


# Every referral event sets its need's referral (RETURNING the need set: the need now holding the referral, without
# reading it again): sent as the database's own SQL (refnet_platform.prepared), skipping SQLAlchemy's per-execute work.
_SET_REFERRAL = ("UPDATE needs SET referral_id = :new_referral_id, referral_status = :new_status, "
                 "provider_id = COALESCE(NULLIF(:new_provider_id, ''), provider_id) WHERE case_id = :of_case AND ")
_REFERRAL_BY_NEED = PreparedStatement(text(_SET_REFERRAL + "need_id = :of_need RETURNING need_id"))
_REFERRAL_BY_REFERRAL = PreparedStatement(text(_SET_REFERRAL + "referral_id = :new_referral_id RETURNING need_id"))
# Statements built once: executing a constant statement with parameters skips SQLAlchemy's per-call
# statement construction and cache-key work, most of what a write cost here.
_CASE_EXISTS = select(cases.c.case_id).where(cases.c.case_id == bindparam("case_id"))
_INSERT_CASE = insert(cases)
_INSERT_CASE_KEY = insert(case_keys)
_INSERT_PERSONAL_DATA = insert(case_personal_data)
_INSERT_NEEDS = insert(needs)
_INSERT_CONSENTS = insert(consents)
_INSERT_CONSENT_NOTES = insert(consent_notes)
_INSERT_PHONE = insert(contact_phones)
_INSERT_CALL = insert(calls)


def _need_row(case_id: str, need: Need) -> dict[str, Any]:
    return dict(need_id=need.need_id, case_id=case_id, service_type=str(need.service_type),
                consented=need.consent is not None, referral_id=need.referral_id,
                referral_status=need.referral_status, provider_id=need.provider_id)


def _consent_row(case_id: str, consent: Consent) -> dict[str, Any]:
    return dict(consent_id=consent.consent_id, case_id=case_id, need_id=consent.need_id,
                given_by=str(consent.given_by), legal_basis=str(consent.legal_basis or ""),
                recipient_sectors=list(consent.recipient_sectors), data_categories=list(consent.data_categories),
                given_at=consent.given_at, expires_at=consent.expires_at, recorded_by=consent.recorded_by)


class CaseRepository:
    def __init__(self, conn: Connection, vault: Vault) -> None:
        self.conn = conn
        self.vault = vault

    def add(self, case: Case, contact: Contact, narrative: str) -> None:
        self.conn.execute(_INSERT_CASE, dict(
            case_id=case.case_id, client_request_id=case.client_request_id,
            province_code=case.province_code, commune_code=case.commune_code,
            case_types=[str(t) for t in case.case_types], is_child=case.survivor.is_child,
            age=case.survivor.age, age_band=case.survivor.age_band_given,
            sex=str(case.survivor.sex) if case.survivor.sex else None,
            reported_province_code=case.reported_in.province_code if case.reported_in else None,
            reported_commune_code=case.reported_in.commune_code if case.reported_in else None,
            call_id=case.call_id or None, registered_at=case.registered_at,
            reporting_consent=case.reporting_consent, handling_line=case.handling_line or None,
            disability=str(case.survivor.disability) if case.survivor.disability else None, imported=case.imported,
            **self._mutable(case),
        ))
        key, key_id, wrapped = self.vault.new_case_key(case.case_id)
        self.conn.execute(_INSERT_CASE_KEY, dict(case_id=case.case_id, wrapped_key=wrapped, key_id=key_id))
        self.conn.execute(_INSERT_PERSONAL_DATA, dict(
            case_id=case.case_id, ciphertext=self.vault.seal_personal_data(key, case.case_id, contact, narrative)))
        if case.needs:
            self.conn.execute(_INSERT_NEEDS, [_need_row(case.case_id, need) for need in case.needs])
        given = [need.consent for need in case.needs if need.consent is not None]
        if given:
            self.conn.execute(_INSERT_CONSENTS, [_consent_row(case.case_id, consent) for consent in given])
            self._seal_notes(case.case_id, given, key)
        phone_key = self.vault.phone_key(contact.phone) if contact.phone else ""
        if phone_key:
            self.conn.execute(_INSERT_PHONE, dict(phone_key=phone_key, case_id=case.case_id))

    def add_need(self, case_id: str, need: Need) -> None:
        self.conn.execute(_INSERT_NEEDS, _need_row(case_id, need))
        if need.consent is not None:
            self.conn.execute(_INSERT_CONSENTS, _consent_row(case_id, need.consent))
            self._seal_notes(case_id, [need.consent])

    def add_consent(self, case_id: str, consent: Consent) -> None:
        self.conn.execute(_INSERT_CONSENTS, _consent_row(case_id, consent))
        self._seal_notes(case_id, [consent])
        self.conn.execute(update(needs).where(needs.c.need_id == consent.need_id).values(consented=True))

    def _seal_notes(self, case_id: str, given: list[Consent], key: bytes | None = None) -> None:
        """Each consent's legal-basis note, sealed under the case's key (never stored in clear)."""
        noted = [c for c in given if c.legal_basis_note]
        if not noted:
            return
        key = key or self._case_key(case_id)
        self.conn.execute(_INSERT_CONSENT_NOTES, [
            dict(consent_id=c.consent_id, case_id=case_id,
                 sealed=self.vault.seal_row(key, case_id, c.consent_id, c.legal_basis_note.encode())) for c in noted])

    def _case_key(self, case_id: str) -> bytes:
        wrapped = self.conn.execute(select(case_keys.c.wrapped_key, case_keys.c.key_id)
                                    .where(case_keys.c.case_id == case_id)).one()
        return self.vault.unwrap(case_id, *wrapped)

    def seal_pending_notes(self) -> int:
        """Seals the notes migration erasure_0006 converted from the old free text (intake-api, at start); a note
        of a case erased since is deleted. Returns how many were sealed."""
        pending = self.conn.execute(select(consent_notes.c.consent_id, consent_notes.c.case_id, consent_notes.c.pending)
                                    .where(consent_notes.c.pending.is_not(None))).all()
        sealed = 0
        for consent_id, case_id, pending_note in pending:
            which = consent_notes.c.consent_id == consent_id
            if not self.conn.execute(select(case_keys.c.case_id).where(case_keys.c.case_id == case_id)).first():
                self.conn.execute(delete(consent_notes).where(which))
                continue
            note = self.vault.seal_row(self._case_key(case_id), case_id, consent_id, pending_note.encode())
            self.conn.execute(update(consent_notes).where(which).values(sealed=note, pending=None))
            sealed += 1
        return sealed

    def withdraw(self, consent: Consent) -> None:
        self.conn.execute(update(consents).where(consents.c.consent_id == consent.consent_id).values(
            withdrawn_at=consent.withdrawn_at, withdrawn_by=consent.withdrawn_by))
        self.conn.execute(update(needs).where(needs.c.need_id == consent.need_id).values(consented=False))

    def update(self, case: Case) -> None:
        self.conn.execute(update(cases).where(cases.c.case_id == case.case_id).values(**self._mutable(case)))

    def update_need(self, need: Need) -> None:
        self.conn.execute(update(needs).where(needs.c.need_id == need.need_id).values(
            referral_id=need.referral_id, referral_status=need.referral_status, provider_id=need.provider_id))

    def record_referral(self, case_id: str, need_id: str, referral_id: str, status: str, provider_id: str
                        ) -> str | None:
        """Sets the referral on the case's need `need_id`, or else on its need holding `referral_id`; the id of
        the need set (now holding `referral_id`), None if neither is found."""
        values = {"of_case": case_id, "new_referral_id": referral_id, "new_status": status,
                  "new_provider_id": provider_id}
        if need_id:
            held: str | None = _REFERRAL_BY_NEED.execute(self.conn, {**values, "of_need": need_id}).scalar()
            if held is not None:
                return held
        return _REFERRAL_BY_REFERRAL.execute(self.conn, values).scalar() if referral_id else None

    def exists(self, case_id: str) -> bool:
        return self.conn.execute(_CASE_EXISTS, {"case_id": case_id}).first() is not None

    def get(self, case_id: str, lock: bool = False) -> Case | None:
        """`lock`: hold the case row until commit, so concurrent changes to one case queue up."""
        query = select(cases).where(cases.c.case_id == case_id)
        row = self.conn.execute(query.with_for_update() if lock else query).mappings().first()
        return self._load(row) if row else None

    def read_personal_data(self, case_id: str) -> tuple[Contact, str] | None:
        """The decrypted contact and narrative; None once the case's key is destroyed."""
        wrapped = self.conn.execute(select(case_keys.c.wrapped_key, case_keys.c.key_id)
                                    .where(case_keys.c.case_id == case_id)).first()
        sealed = self.conn.execute(
            select(case_personal_data.c.ciphertext).where(case_personal_data.c.case_id == case_id)).scalar()
        if wrapped is None or sealed is None:
            return None
        return self.vault.open_personal_data(self.vault.unwrap(case_id, *wrapped), case_id, sealed)

    def erase_personal_data(self, case_id: str) -> None:
        """The case's key and everything sealed under it: its personal data, its consents' notes and what its case
        work wrote. (With the key alone gone, a backup from before, restored with the master key, would read the
        ciphertext again.)"""
        for table in (consent_notes, case_personal_data, contact_phones, sms_stops, case_keys):
            self.conn.execute(delete(table).where(table.c.case_id == case_id))
        # Case work keeps its ids and codes (counted in reports); what was written goes with the key.
        for table in (assessments, plan_goals, follow_ups, case_reviews):
            self.conn.execute(update(table).where(table.c.case_id == case_id).values(ciphertext=b""))

    # --- texts from her number (STOP / START) ---

    def with_phone(self, phone: str) -> list[str]:
        """The cases whose contact holds this number (by its keyed hash), erased ones excepted."""
        keys = self.vault.phone_keys(phone)
        if not keys:
            return []
        rows = self.conn.execute(select(contact_phones.c.case_id).distinct()
                                 .join(case_keys, case_keys.c.case_id == contact_phones.c.case_id)
                                 .where(contact_phones.c.phone_key.in_(keys)).order_by(contact_phones.c.case_id))
        return [r.case_id for r in rows]

    def stop_sms(self, case_ids: list[str], at: datetime) -> list[str]:
        """Records STOP on these cases; the ones not already stopped."""
        already = set(self.conn.execute(select(sms_stops.c.case_id).where(sms_stops.c.case_id.in_(case_ids)))
                      .scalars())
        changed = [c for c in case_ids if c not in already]
        if changed:
            self.conn.execute(insert(sms_stops), [dict(case_id=c, stopped_at=at) for c in changed])
        return changed

    def start_sms(self, case_ids: list[str]) -> list[str]:
        """Lifts STOP on these cases; the ones that were stopped."""
        stopped = list(self.conn.execute(select(sms_stops.c.case_id).where(sms_stops.c.case_id.in_(case_ids)))
                       .scalars())
        if stopped:
            self.conn.execute(delete(sms_stops).where(sms_stops.c.case_id.in_(stopped)))
        return stopped

    def keyed_cases(self, after: str, limit: int) -> list[str]:
        """Up to `limit` case ids with a key (not erased), in order after `after`."""
        return list(self.conn.execute(select(case_keys.c.case_id).where(case_keys.c.case_id > after)
                                      .order_by(case_keys.c.case_id).limit(limit)).scalars())

    def index_phone(self, case_id: str, phone: str) -> bool:
        """Records the number's hash under the current master key for the case, unless it is there already."""
        phone_key = self.vault.phone_key(phone)
        if not phone_key:
            return False
        known = self.conn.execute(select(contact_phones.c.case_id).where(
            contact_phones.c.case_id == case_id, contact_phones.c.phone_key == phone_key)).first()
        if known is None:
            self.conn.execute(insert(contact_phones), dict(phone_key=phone_key, case_id=case_id))
        return known is None

    def sms_stopped(self, case_id: str) -> bool:
        return self.conn.execute(select(sms_stops.c.case_id).where(sms_stops.c.case_id == case_id)).first() is not None

    def key_counts(self) -> dict[str | None, int]:
        """How many case keys each master key wraps, by key id (None: wrapped before ids were recorded)."""
        rows = self.conn.execute(select(case_keys.c.key_id, func.count()).group_by(case_keys.c.key_id))
        return {key_id: int(count) for key_id, count in rows}

    def erased_count(self) -> int:
        return int(self.conn.execute(select(func.count()).select_from(cases)
                                     .where(cases.c.status == str(CaseStatus.ERASED))).scalar_one())

    def keys_to_rewrap(self, after: str, limit: int) -> list[tuple[str, bytes, str | None]]:
        """(case id, wrapped key, key id) of up to `limit` case keys not under the current master key, in case
        id order after `after`. The rows stay locked until commit: an erasure meanwhile waits, then deletes."""
        current = self.vault.key_id
        query = (select(case_keys.c.case_id, case_keys.c.wrapped_key, case_keys.c.key_id)
                 .where(or_(case_keys.c.key_id.is_(None), case_keys.c.key_id != current), case_keys.c.case_id > after)
                 .order_by(case_keys.c.case_id).limit(limit).with_for_update())
        return [(case_id, bytes(wrapped), key_id) for case_id, wrapped, key_id in self.conn.execute(query)]

    def set_wrapped_key(self, case_id: str, key_id: str, wrapped: bytes) -> None:
        self.conn.execute(update(case_keys).where(case_keys.c.case_id == case_id).values(
            wrapped_key=wrapped, key_id=key_id))

    @staticmethod
    def _mutable(case: Case) -> dict[str, Any]:
        return {
            "risk_level": str(case.risk_level), "immediate_danger": case.immediate_danger,
            "status": str(case.status), "child_protection_deadline": case.child_protection_deadline,
            "closed_at": case.closed_at, "close_outcome": str(case.close_outcome) if case.close_outcome else None,
            "erased_at": case.erased_at, "case_worker_id": case.case_worker_id,
            "close_reason": str(case.close_reason) if case.close_reason else None,
            "current_step": str(case.current_step) if case.current_step else None,
            "next_due_at": case.next_due_at, "due_order": case.next_due_at or NO_DEADLINE,
        }

    def _load(self, row: Any) -> Case:
        r = dict(row)
        noted = select(consent_notes.c.consent_id).where(consent_notes.c.case_id == r["case_id"])
        consent_rows = self.conn.execute(
            select(consents, consents.c.consent_id.in_(noted).label("noted")).where(consents.c.case_id == r["case_id"])
            .order_by(consents.c.given_at, consents.c.consent_id)).mappings()
        latest = {c["need_id"]: _consent(c) for c in consent_rows}  # the newest per need wins
        need_rows = self.conn.execute(
            select(needs).where(needs.c.case_id == r["case_id"]).order_by(needs.c.need_id)).mappings()
        reported = (Place(r["reported_province_code"], r["reported_commune_code"] or "")
                    if r["reported_province_code"] else None)
        return Case(
            case_id=r["case_id"], client_request_id=r["client_request_id"],
            province_code=r["province_code"], commune_code=r["commune_code"],
            case_types=[CaseType(t) for t in r["case_types"]],
            survivor=Survivor(is_child=r["is_child"], age=r["age"], sex=Sex(r["sex"]) if r["sex"] else None,
                              age_band_given=r["age_band"],
                              disability=Disability(r["disability"]) if r["disability"] else None),
            needs=[Need(need_id=n["need_id"], service_type=ServiceType(n["service_type"]),
                        consent=latest.get(n["need_id"]), referral_id=n["referral_id"],
                        referral_status=n["referral_status"], provider_id=n["provider_id"]) for n in need_rows],
            risk_level=RiskLevel(r["risk_level"]), immediate_danger=r["immediate_danger"],
            case_worker_id=r["case_worker_id"], registered_at=_aware(r["registered_at"]),  # type: ignore[arg-type]
            reported_in=reported, call_id=r["call_id"] or "", status=CaseStatus(r["status"]),
            child_protection_deadline=_aware(r["child_protection_deadline"]), closed_at=_aware(r["closed_at"]),
            close_outcome=CloseOutcome(r["close_outcome"]) if r["close_outcome"] else None,
            erased_at=_aware(r["erased_at"]),
            close_reason=CloseReason(r["close_reason"]) if r["close_reason"] else None,
            current_step=CaseStep(r["current_step"]) if r["current_step"] else None,
            next_due_at=_aware(r["next_due_at"]), reporting_consent=r["reporting_consent"],
            handling_line=r["handling_line"] or r["reported_province_code"] or r["province_code"],
            imported=r["imported"],
        )


def _consent(c: Any) -> Consent:
    return Consent(
        consent_id=c["consent_id"], need_id=c["need_id"], given_by=ConsentGiver(c["given_by"]),
        legal_basis=LegalBasis(c["legal_basis"]) if c["legal_basis"] else None, has_legal_basis_note=bool(c["noted"]),
        recipient_sectors=tuple(c["recipient_sectors"]),
        data_categories=tuple(c["data_categories"]), given_at=_aware(c["given_at"]),  # type: ignore[arg-type]
        expires_at=_aware(c["expires_at"]), recorded_by=c["recorded_by"],  # type: ignore[arg-type]
        withdrawn_at=_aware(c["withdrawn_at"]), withdrawn_by=c["withdrawn_by"] or "",
    )


class CallRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, call: Call) -> None:
        d = call.details
        self.conn.execute(_INSERT_CALL, dict(
            call_id=call.call_id, province_code=call.province_code, commune_code=call.commune_code,
            channel=str(d.channel), topic=str(d.topic), anonymous=d.anonymous, outcome=str(call.outcome),
            case_id=call.case_id or None, started_at=d.started_at, duration_seconds=d.duration_seconds,
            logged_by=call.logged_by, logged_at=call.logged_at, imported=call.imported))

    def get(self, call_id: str) -> Call | None:
        r = self.conn.execute(select(calls).where(calls.c.call_id == call_id)).mappings().first()
        if r is None:
            return None
        details = CallDetails(channel=CallChannel(r["channel"]), topic=CallTopic(r["topic"]),
                              anonymous=r["anonymous"], started_at=_aware(r["started_at"]),
                              duration_seconds=r["duration_seconds"])
        return Call(call_id=r["call_id"], province_code=r["province_code"], commune_code=r["commune_code"],
                    details=details, outcome=CallOutcome(r["outcome"]), case_id=r["case_id"] or "",
                    logged_by=r["logged_by"], logged_at=_aware(r["logged_at"]),  # type: ignore[arg-type]
                    imported=r["imported"])


# One statement for a referral new or known, spelt alike by SQLite and PostgreSQL. Written as text: SQLAlchemy
# compiles an on_conflict_do_update() construct anew on every call (it has no cache key), which cost more than the
# reads it replaces; prepared, as every referral event runs it. A known referral takes the new status (never back to
# requested, which only ever comes first), keeps the first provider and need named and stays accepted once it was; a
# referral belongs to one case, so an event naming another case changes nothing.
_UPSERT_REFERRAL = PreparedStatement(text(f"""
INSERT INTO referrals (referral_id, case_id, need_id, provider_id, status, accepted, updated_at)
VALUES (:referral_id, :case_id, :need_id, :provider_id, :status, :accepted, :updated_at)
ON CONFLICT (referral_id) DO UPDATE SET
  status = CASE WHEN excluded.status = '{REFERRAL_REQUESTED}' AND referrals.status <> '{REFERRAL_REQUESTED}'
                THEN referrals.status ELSE excluded.status END,
  provider_id = COALESCE(NULLIF(referrals.provider_id, ''), excluded.provider_id),
  need_id = COALESCE(NULLIF(referrals.need_id, ''), excluded.need_id),
  accepted = (referrals.accepted OR excluded.accepted),
  updated_at = excluded.updated_at
WHERE referrals.case_id = excluded.case_id
"""), [referrals.c.accepted, referrals.c.updated_at])
# Progress on a known referral whose need no longer holds it (a new referral is not recorded without its need): the
# upsert's rule.
_NEW_STATUS = bindparam("new_status")
_UPDATE_REFERRAL = update(referrals).where(
    referrals.c.referral_id == bindparam("of_referral"), referrals.c.case_id == bindparam("of_case")
).values(
    status=sql_case((and_(_NEW_STATUS == REFERRAL_REQUESTED, referrals.c.status != REFERRAL_REQUESTED),
                     referrals.c.status), else_=_NEW_STATUS),
    provider_id=func.coalesce(func.nullif(referrals.c.provider_id, ""), bindparam("new_provider_id")),
    accepted=or_(referrals.c.accepted, bindparam("new_accepted", type_=Boolean)),
    updated_at=bindparam("new_at", type_=DateTime(timezone=True)))
_GET_REFERRAL = select(referrals).where(referrals.c.referral_id == bindparam("referral_id"))


class ReferralLog:
    """Intake's record of every referral made for its cases, as referral's events report them."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, referral_id: str) -> ReferralRecord | None:
        r = self.conn.execute(_GET_REFERRAL, {"referral_id": referral_id}).mappings().first()
        if r is None:
            return None
        return ReferralRecord(referral_id=r["referral_id"], case_id=r["case_id"], need_id=r["need_id"],
                              provider_id=r["provider_id"], status=r["status"], accepted=r["accepted"])

    def record(self, case_id: str, need_id: str | None, referral_id: str, status: str, provider_id: str,
               accepted: bool, at: datetime) -> None:
        """A new referral needs its need (else nothing is recorded: nothing could be read for it). A known
        one takes the new status (never back to requested, which only ever comes first), keeps the first
        provider and need named and stays accepted once it was. One statement either way."""
        if need_id:
            _UPSERT_REFERRAL.execute(self.conn, dict(
                referral_id=referral_id, case_id=case_id, need_id=need_id, provider_id=provider_id,
                status=status, accepted=accepted, updated_at=at))
        else:
            self.conn.execute(_UPDATE_REFERRAL, dict(of_referral=referral_id, of_case=case_id, new_status=status,
                                                     new_provider_id=provider_id, new_accepted=accepted, new_at=at))


class AuditLog:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def append(self, entry: AuditEntry) -> None:
        self.conn.execute(insert(audit_log).values(
            at=entry.at, actor_id=entry.actor.subject_id, actor_role=str(entry.actor.role), action=entry.action,
            case_id=entry.case_id, need_id=entry.need_id, referral_id=entry.referral_id,
            recipient_id=entry.recipient_id, purpose=entry.purpose, detail=entry.detail[:400]))
