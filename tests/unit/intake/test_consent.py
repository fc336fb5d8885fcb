"""Consent first: who may consent, what it covers, withdrawal, overrides, contact reads, erasure."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from intake.domain import commands
from intake.domain.model import (
    CaseStatus,
    ConsentGiver,
    ConsentStatus,
    ConsentTerms,
    EraseReason,
    LegalBasis,
    NeedSpec,
    SafeTime,
    Survivor,
)
from refnet.intake.v1 import events_pb2
from refnet_platform.caller import Caller, Role
from refnet_platform.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from refnet_platform.vocabulary import RiskLevel, ServiceType, Sex

CHILD = Survivor(True, 13, Sex.FEMALE)
PURPOSE = "provider_accepted_referral"


def rid() -> str:
    return f"req-{uuid.uuid4()}"


def read_contact(intake: Any, case_id: str, service: ServiceType = ServiceType.POLICE_PROTECTION,
                 sector: str = "police", caller: Any = None, referral_id: str = "ref-1") -> Any:
    return intake.handle(commands.GetCaseContact(caller or intake.service, case_id, referral_id, "qn-police-baichay",
                                                 sector, service, PURPOSE))


def accepted(intake: Any, case: Any, *services: ServiceType) -> Any:
    """The case, with a referral (ref-1, ref-2, ...) accepted by qn-police-baichay for each service (police
    protection if none named), as intake-worker records them from referral's events."""
    for index, service in enumerate(services or (ServiceType.POLICE_PROTECTION,), start=1):
        intake.refer(case, "accepted", referral_id=f"ref-{index}", service=service)
    return case


def consented(intake: Any, case_id: str) -> dict[str, bool]:
    """Every need as published on any event so far: service -> consented (the last word wins)."""
    seen: dict[str, bool] = {}
    for _, _, event in intake.events(case_id):
        refs = list(getattr(event, "needs", [])) + ([event.need] if isinstance(event, events_pb2.NeedAdded) else [])
        for ref in refs:
            seen[ref.need_id] = ref.consented
        if isinstance(event, events_pb2.ConsentGiven):
            seen[event.need_id] = True
        if isinstance(event, events_pb2.ConsentWithdrawn):
            seen[event.need_id] = False
    return seen


# ---------------------------------------------------------------------------------------------
# Who consents, to what


def test_the_shorthand_is_an_adults_own_consent_for_what_reaches_her_safely(intake: Any) -> None:
    case = intake.register()
    police, legal = case.needs
    assert police.consent.given_by is ConsentGiver.SURVIVOR
    assert police.consent.data_categories == ("name", "phone", "safe_contact")
    assert police.consent.expires_at == police.consent.given_at + timedelta(days=90)
    assert legal.consent is None
    [(_, _, event)] = intake.events(case.case_id)
    refs = {ref.need_id: ref for ref in event.needs}
    assert refs[police.need_id].consented and refs[police.need_id].consent_id == police.consent.consent_id
    assert not refs[legal.need_id].consented and not refs[legal.need_id].consent_id


@pytest.mark.parametrize(("terms", "field"), [
    (None, "needs[0].consent.given_by"),  # the shorthand cannot speak for a child
    (ConsentTerms(ConsentGiver.SURVIVOR, ("name",)), "needs[0].consent.given_by"),
    (ConsentTerms(ConsentGiver.CASE_WORKER, ("name",)), "needs[0].consent.legal_basis_code"),
    (ConsentTerms(ConsentGiver.CASE_WORKER, ("name",), legal_basis=LegalBasis.OTHER),
     "needs[0].consent.legal_basis_note"),
    (ConsentTerms(None, ("name",)), "needs[0].consent.given_by"),
    (ConsentTerms(ConsentGiver.GUARDIAN, ()), "needs[0].consent.data_categories"),
    (ConsentTerms(ConsentGiver.GUARDIAN, ("name", "diary")), "needs[0].consent.data_categories[1]"),
    (ConsentTerms(ConsentGiver.GUARDIAN, ("name",), ("police", "army")), "needs[0].consent.recipient_sectors[1]"),
    (ConsentTerms(ConsentGiver.GUARDIAN, ("name",), expires_at=datetime(2020, 1, 1, tzinfo=UTC)),
     "needs[0].consent.expires_at"),
    (ConsentTerms(ConsentGiver.SUPERVISOR_OVERRIDE, ("name",), legal_basis=LegalBasis.OTHER,
                  legal_basis_note="x"), "needs[0].consent.given_by"),
])
def test_a_childs_consent_is_a_guardians_or_a_case_workers_under_a_legal_basis(
        intake: Any, terms: ConsentTerms | None, field: str) -> None:
    need = NeedSpec(ServiceType.SHELTER, consented=terms is None, consent=terms)
    with pytest.raises(InvalidArgument) as refused:
        intake.register(survivor=CHILD, needs=[need])
    assert refused.value.field == field
    assert intake.total_rows() == 0


def test_a_case_worker_may_consent_for_a_child_and_not_for_an_adult(intake: Any) -> None:
    terms = ConsentTerms(ConsentGiver.CASE_WORKER, ("name", "address"), ("shelter",),
                         legal_basis=LegalBasis.CHILDREN_LAW_2016)
    case = intake.register(survivor=CHILD, needs=[NeedSpec(ServiceType.SHELTER, consent=terms)])
    assert case.needs[0].consent_status(datetime.now(UTC)) is ConsentStatus.VALID
    with pytest.raises(InvalidArgument) as refused:
        intake.register(needs=[NeedSpec(ServiceType.SHELTER, consent=terms)])
    assert refused.value.field == "needs[0].consent.given_by"


def test_a_need_without_consent_is_never_published_as_consented(intake: Any) -> None:
    case = intake.register()
    legal = case.needs[1]
    assert consented(intake, case.case_id)[legal.need_id] is False
    # Consent given later travels in ConsentGiven, with exactly what it covers.
    terms = ConsentTerms(ConsentGiver.SURVIVOR, ("name", "phone"), ("legal_aid",))
    _, consent_id, _ = intake.handle(commands.GiveConsent(intake.operator, rid(), case.case_id, legal.need_id, terms))
    [given] = [e for _, _, e in intake.events(case.case_id) if isinstance(e, events_pb2.ConsentGiven)]
    assert (given.need_id, given.consent_id, list(given.recipient_sectors), list(given.data_categories)) == (
        legal.need_id, consent_id, ["legal_aid"], ["name", "phone"])
    assert not given.override


def test_giving_consent_needs_terms_and_a_need_of_the_case(intake: Any) -> None:
    case = intake.register()
    terms = ConsentTerms(ConsentGiver.SURVIVOR, ("name",))
    with pytest.raises(InvalidArgument) as refused:
        intake.handle(commands.GiveConsent(intake.operator, rid(), case.case_id, case.needs[1].need_id, None))
    assert refused.value.field == "consent"
    with pytest.raises(InvalidArgument) as refused:
        intake.handle(commands.GiveConsent(intake.operator, rid(), case.case_id, "not-a-need", terms))
    assert refused.value.field == "need_id"
    with pytest.raises(InvalidArgument) as refused:
        intake.handle(commands.GiveConsent(intake.operator, rid(), case.case_id, case.needs[1].need_id,
                                           ConsentTerms(ConsentGiver.SURVIVOR, ())))
    assert refused.value.field == "consent.data_categories"


# ---------------------------------------------------------------------------------------------
# Withdrawal


def test_withdrawal_is_published_and_ends_the_contact_reads(intake: Any) -> None:
    case = accepted(intake, intake.register())
    police = case.needs[0]
    assert read_contact(intake, case.case_id)[0].name == "Trần Thị Mẫu"
    updated, consent_id, created = intake.handle(
        commands.WithdrawConsent(intake.operator, rid(), case.case_id, police.need_id))
    assert created and consent_id == police.consent.consent_id
    assert updated.needs[0].consent_status(datetime.now(UTC)) is ConsentStatus.WITHDRAWN
    [(topic, key, withdrawn)] = [(t, k, e) for t, k, e in intake.events(case.case_id)
                                 if isinstance(e, events_pb2.ConsentWithdrawn)]
    assert (topic, key, withdrawn.need_id, withdrawn.consent_id) == ("intake.cases.v1", "22", police.need_id,
                                                                      consent_id)
    assert withdrawn.service_type == 1  # police protection
    with pytest.raises(FailedPrecondition, match="withdrawn"):
        read_contact(intake, case.case_id)
    with pytest.raises(FailedPrecondition):  # nothing left to withdraw
        intake.handle(commands.WithdrawConsent(intake.operator, rid(), case.case_id, police.need_id))
    assert consented(intake, case.case_id)[police.need_id] is False


def test_consent_can_be_given_again_after_withdrawal(intake: Any) -> None:
    case = accepted(intake, intake.register())
    police = case.needs[0]
    intake.handle(commands.WithdrawConsent(intake.operator, rid(), case.case_id, police.need_id))
    terms = ConsentTerms(ConsentGiver.SURVIVOR, ("phone",))
    intake.handle(commands.GiveConsent(intake.operator, rid(), case.case_id, police.need_id, terms))
    contact, categories = read_contact(intake, case.case_id)
    assert categories == ("phone",) and (contact.name, contact.phone) == ("", "0912 345 678")


# ---------------------------------------------------------------------------------------------
# Override


def test_an_override_needs_a_supervisor_and_a_legal_basis_and_is_audited(intake: Any) -> None:
    case = intake.register(survivor=CHILD, needs=[NeedSpec(ServiceType.POLICE_PROTECTION)], risk_level=RiskLevel.HIGH)
    need_id = case.needs[0].need_id
    no_basis = ConsentTerms(ConsentGiver.SUPERVISOR_OVERRIDE, ("name", "address"))
    with pytest.raises(PermissionDenied):
        intake.handle(commands.OverrideConsent(intake.operator, rid(), case.case_id, need_id, no_basis))
    with pytest.raises(InvalidArgument) as refused:
        intake.handle(commands.OverrideConsent(intake.supervisor, rid(), case.case_id, need_id, no_basis))
    assert refused.value.field == "legal_basis_code"
    assert intake.count("audit_log") == 0 and intake.count("consents") == 0

    basis = LegalBasis.DECREE_56_2017
    with_basis = ConsentTerms(ConsentGiver.SUPERVISOR_OVERRIDE, ("name", "address"), ("police",), legal_basis=basis,
                              legal_basis_note="biện pháp can thiệp khẩn cấp")
    updated, consent_id, _ = intake.handle(
        commands.OverrideConsent(intake.supervisor, rid(), case.case_id, need_id, with_basis))
    assert updated.needs[0].consent.override
    [given] = [e for _, _, e in intake.events(case.case_id) if isinstance(e, events_pb2.ConsentGiven)]
    assert given.override and given.consent_id == consent_id
    with intake.engine.connect() as conn:
        [audit] = conn.execute(text("SELECT * FROM audit_log")).mappings().all()
    assert (audit["action"], audit["actor_id"], audit["actor_role"], audit["case_id"], audit["need_id"],
            audit["detail"]) == ("consent_override", "qn-supervisor-1", "supervisor", case.case_id, need_id, basis)


# ---------------------------------------------------------------------------------------------
# Contact reads


def test_a_contact_read_returns_only_what_the_consent_covers_and_is_audited(intake: Any) -> None:
    terms = ConsentTerms(ConsentGiver.SURVIVOR, ("phone", "safe_contact"), ("police",))
    case = accepted(intake, intake.register(needs=[NeedSpec(ServiceType.POLICE_PROTECTION, consent=terms)]))
    contact, categories = read_contact(intake, case.case_id)
    assert categories == ("phone", "safe_contact")
    assert (contact.name, contact.address) == ("", "")
    assert (contact.phone, contact.safe_contact_note, contact.phone_is_safe) == ("0912 345 678", "after 18:00", True)
    with intake.engine.connect() as conn:
        [audit] = conn.execute(text("SELECT * FROM audit_log")).mappings().all()
    assert (audit["action"], audit["actor_id"], audit["recipient_id"], audit["referral_id"], audit["purpose"],
            audit["need_id"], audit["detail"]) == ("contact_read", "referral", "qn-police-baichay", "ref-1", PURPOSE,
                                                   case.needs[0].need_id, "phone,safe_contact")
    assert audit["at"] is not None


def test_her_safe_times_are_read_only_where_the_consent_covers_safe_contact(intake: Any) -> None:
    safe = (SafeTime((1, 2, 3), "21:00", "22:30"), SafeTime((), "22:00", "06:00"))
    contact = replace(intake.register_command().contact, safe_times=safe)
    covered = ConsentTerms(ConsentGiver.SURVIVOR, ("phone", "safe_contact"), ("police",))
    phone_only = ConsentTerms(ConsentGiver.SURVIVOR, ("phone",), ("legal_aid",))
    case = intake.register(contact=contact, needs=[NeedSpec(ServiceType.POLICE_PROTECTION, consent=covered),
                                                   NeedSpec(ServiceType.LEGAL_AID, consent=phone_only)])
    accepted(intake, case, ServiceType.POLICE_PROTECTION, ServiceType.LEGAL_AID)
    read, _ = read_contact(intake, case.case_id)
    assert read.safe_times == safe
    read, _ = read_contact(intake, case.case_id, ServiceType.LEGAL_AID, "legal_aid", referral_id="ref-2")
    assert (read.phone, read.safe_times, read.safe_contact_note) == ("0912 345 678", (), "")


def test_contact_reads_are_refused_without_consent_and_each_refusal_is_audited(intake: Any) -> None:
    terms = ConsentTerms(ConsentGiver.SURVIVOR, ("name",), ("police",))
    case = intake.register(needs=[NeedSpec(ServiceType.POLICE_PROTECTION, consent=terms),
                                  NeedSpec(ServiceType.LEGAL_AID)])
    accepted(intake, case, ServiceType.POLICE_PROTECTION, ServiceType.LEGAL_AID)
    with pytest.raises(PermissionDenied, match="legal_aid"):  # a need without consent
        read_contact(intake, case.case_id, ServiceType.LEGAL_AID, "legal_aid", referral_id="ref-2")
    with pytest.raises(NotFound, match=f"^case {case.case_id} not found$"):  # no such need: no referral for it
        read_contact(intake, case.case_id, ServiceType.MEDICAL, "health")
    with pytest.raises(PermissionDenied, match="health sector"):
        read_contact(intake, case.case_id, ServiceType.POLICE_PROTECTION, "health")
    with pytest.raises(PermissionDenied, match="recipient_sector is required"):
        read_contact(intake, case.case_id, ServiceType.POLICE_PROTECTION, "")  # unsaid: not assumed covered
    assert intake.count("audit_log", "action = 'contact_refused'") == 4
    assert intake.count("audit_log", "action = 'contact_read'") == 0


def test_a_consent_for_any_sector_needs_no_sector_named(intake: Any) -> None:
    case = accepted(intake, intake.register())  # the shorthand: any provider of the service
    assert read_contact(intake, case.case_id, sector="")[0].name == "Trần Thị Mẫu"


def test_an_expired_consent_allows_no_read(intake: Any) -> None:
    soon = intake.clock() + timedelta(seconds=1)
    terms = ConsentTerms(ConsentGiver.SURVIVOR, ("name",), expires_at=soon)
    case = accepted(intake, intake.register(needs=[NeedSpec(ServiceType.POLICE_PROTECTION, consent=terms)]))
    intake.clock.advance(milliseconds=999)
    assert read_contact(intake, case.case_id)[0].name  # still valid in its last millisecond
    intake.clock.advance(milliseconds=1)
    with pytest.raises(FailedPrecondition, match="expired"):
        read_contact(intake, case.case_id)
    assert not intake.handle(commands.GetCase(intake.operator, case.case_id)).needs[0].valid_consent(intake.clock())


@pytest.mark.parametrize(("field", "value"), [
    ("case_id", ""), ("referral_id", ""), ("recipient_id", ""), ("recipient_sector", "army"),
    ("service_type", None), ("purpose", "Because I Want To"),
])
def test_contact_requests_name_their_bad_field(intake: Any, field: str, value: Any) -> None:
    case = intake.register()
    request = dict(caller=intake.service, case_id=case.case_id, referral_id="ref-1", recipient_id="qn-police",
                   recipient_sector="police", service_type=ServiceType.POLICE_PROTECTION, purpose=PURPOSE)
    request[field] = value
    with pytest.raises(InvalidArgument) as refused:
        intake.handle(commands.GetCaseContact(**request))
    assert refused.value.field == field


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.SUPERVISOR, Role.AGENCY, Role.SHELTER, Role.OPS])
def test_only_refnet_services_read_contacts(intake: Any, role: Role) -> None:
    case = accepted(intake, intake.register())
    with pytest.raises(PermissionDenied):
        read_contact(intake, case.case_id, caller=Caller("referral", role, provinces=frozenset({"*"})))
    assert intake.count("audit_log") == 0


def test_a_closed_case_allows_no_read_but_still_takes_a_withdrawal(intake: Any) -> None:
    case = accepted(intake, intake.register())
    from intake.domain.model import CloseOutcome

    intake.handle(commands.CloseCase(intake.operator, rid(), case.case_id, CloseOutcome.TRANSFERRED))
    with pytest.raises(FailedPrecondition, match="closed"):
        read_contact(intake, case.case_id)
    intake.handle(commands.WithdrawConsent(intake.operator, rid(), case.case_id, case.needs[0].need_id))


# ---------------------------------------------------------------------------------------------
# Erasure and the audit log


def test_erasure_deletes_the_key_the_ciphertext_and_the_notes_and_is_published(intake: Any) -> None:
    case = accepted(intake, intake.register())
    noted = ConsentTerms(ConsentGiver.SUPERVISOR_OVERRIDE, ("phone",), legal_basis=LegalBasis.OTHER,
                         legal_basis_note="Quyết định của UBND xã")
    intake.handle(commands.OverrideConsent(intake.supervisor, rid(), case.case_id, case.needs[0].need_id, noted))
    assert intake.count("consent_notes", "case_id = :c AND sealed IS NOT NULL AND pending IS NULL",
                        c=case.case_id) == 1
    erased, created = intake.handle(commands.EraseCase(intake.supervisor, rid(), case.case_id,
                                                       EraseReason.SURVIVOR_REQUEST))
    assert created and erased.status is CaseStatus.ERASED and erased.erased_at is not None
    assert intake.count("case_keys", "case_id = :c", c=case.case_id) == 0
    assert intake.count("case_personal_data", "case_id = :c", c=case.case_id) == 0
    assert intake.count("consent_notes", "case_id = :c", c=case.case_id) == 0
    assert erased.needs[0].consent.legal_basis is LegalBasis.OTHER  # the code stays: it says nothing of her
    [(topic, key, event)] = [(t, k, e) for t, k, e in intake.events(case.case_id)
                             if isinstance(e, events_pb2.CaseErased)]
    assert (topic, key, event.case_id) == ("intake.cases.v1", "22", case.case_id)
    with pytest.raises(FailedPrecondition, match="erased"):
        read_contact(intake, case.case_id)
    assert intake.count("audit_log", "action = 'erase_case' AND purpose = 'survivor_request'") == 1
    with pytest.raises(FailedPrecondition):
        intake.handle(commands.EraseCase(intake.supervisor, rid(), case.case_id, EraseReason.SURVIVOR_REQUEST))
    with pytest.raises(FailedPrecondition):
        intake.handle(commands.WithdrawConsent(intake.operator, rid(), case.case_id, case.needs[0].need_id))


def test_the_audit_log_is_append_only_in_the_database(intake: Any) -> None:
    case = accepted(intake, intake.register())
    read_contact(intake, case.case_id)
    for statement in ("UPDATE audit_log SET purpose = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DatabaseError, match="append-only"), intake.engine.begin() as conn:
            conn.execute(text(statement))
    assert intake.count("audit_log", "purpose = :p", p=PURPOSE) == 1
