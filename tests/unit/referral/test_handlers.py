"""Routing, consent, the lifecycle, SLAs, beds and authorization through referral's bus (SQLite, fake clock)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest

from referral.domain import commands
from referral.domain.model import Progress, Status, Survivor
from refnet.referral.v1 import referral_service_pb2 as pb
from refnet_platform.caller import Role
from refnet_platform.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from refnet_platform.vocabulary import (
    BedRejectionReason,
    DeclineReason,
    FailureReason,
    Outcome,
    RiskLevel,
    ServiceType,
    Sex,
)

POLICE, SHELTER, LEGAL_AID, MEDICAL = (ServiceType.POLICE_PROTECTION, ServiceType.SHELTER, ServiceType.LEGAL_AID,
                                        ServiceType.MEDICAL)


def test_each_consented_need_goes_to_the_nearest_provider_and_no_other_need_anywhere(referral) -> None:
    case_id, needs = referral.register(POLICE, SHELTER, (LEGAL_AID, False))
    found = {r.service_type: r for r in referral.referrals(case_id)}
    assert set(found) == {POLICE, SHELTER}
    assert found[POLICE].provider_id == "qn-police-baichay"  # her own commune
    assert found[SHELTER].provider_id == "qn-shelter-spc"  # more free beds than Cẩm Phả's
    assert found[SHELTER].shelter_id == "qn-spc"
    assert all(r.status is Status.REQUESTED and r.attempt == 1 for r in found.values())
    requested = referral.events("ReferralRequested")
    assert [(t, k) for t, k, _ in requested] == [("referral.referrals.v1", "22")] * 2
    assert {e.need_id for _, _, e in requested} == {needs[POLICE], needs[SHELTER]}
    [(topic, key, reserve)] = referral.events("ReserveBed")
    assert (topic, key, reserve.referral_id) == ("shelter.bed-commands.v1", "qn-spc", found[SHELTER].referral_id)
    # Medium risk: a day to accept, three to start.
    police = found[POLICE]
    assert police.accept_by == referral.clock.now + timedelta(hours=24)
    assert police.start_by == referral.clock.now + timedelta(days=3)


def test_routing_falls_back_to_the_province_then_a_neighbouring_one(referral) -> None:
    # Hà Tu has no police of its own: the province's police (first by id among equals).
    case_id, _ = referral.register(POLICE, commune="06652")
    assert referral.only(case_id, POLICE).provider_id == "qn-police-baichay"
    # No shelter in Quảng Ninh takes men: Hải Phòng's, next door.
    case_id, _ = referral.register(SHELTER, sex=Sex.MALE)
    shelter = referral.only(case_id, SHELTER)
    assert (shelter.provider_id, shelter.shelter_id) == ("hp-shelter-spc-men", "hp-spc-men")
    [(_, key, requested)] = [e for e in referral.events("ReferralRequested") if e[2].referral_id == shelter.referral_id]
    assert (key, requested.province_code, requested.provider_province_code) == ("22", "22", "31")


def test_no_consent_no_referral_until_it_is_given_and_none_after_it_is_withdrawn(referral) -> None:
    case_id, needs = referral.register(POLICE, (LEGAL_AID, False))
    assert [r.service_type for r in referral.referrals(case_id)] == [POLICE]
    # Risk changes and repeated events route nothing without consent.
    referral.handle(commands.UpdateRisk(case_id, RiskLevel.HIGH, emergency=True))
    assert len(referral.referrals(case_id)) == 1

    referral.handle(commands.GiveConsent(case_id, needs[LEGAL_AID], LEGAL_AID, frozenset({"legal_aid"})))
    legal = referral.only(case_id, LEGAL_AID)
    assert legal.provider_id == "qn-legal-aid" and legal.status is Status.REQUESTED

    referral.handle(commands.WithdrawConsent(case_id, needs[LEGAL_AID], LEGAL_AID))
    legal = referral.only(case_id, LEGAL_AID)
    assert (legal.status, legal.reason) == (Status.CANCELLED, "consent_withdrawn")
    assert referral.only(case_id, POLICE).status is Status.REQUESTED  # the other need is untouched
    # Nothing re-routes a withdrawn need: not a decline, not the timer.
    referral.clock.advance(days=30)
    referral.handle(commands.ExpireOverdue())
    assert [r for r in referral.referrals(case_id) if r.service_type is LEGAL_AID] == [legal]

    # Consent given again: routed again (to the same centre: it never declined).
    referral.handle(commands.GiveConsent(case_id, needs[LEGAL_AID], LEGAL_AID))
    again = referral.only(case_id, LEGAL_AID, status=Status.REQUESTED)
    assert (again.provider_id, again.attempt, again.previous_referral_id) == ("qn-legal-aid", 2, legal.referral_id)


def test_consent_outside_the_covered_sectors_finds_no_provider(referral) -> None:
    case_id, needs = referral.register((POLICE, False))
    referral.handle(commands.GiveConsent(case_id, needs[POLICE], POLICE, frozenset({"health"})))
    escalated = referral.only(case_id, POLICE)
    assert (escalated.provider_id, escalated.status, escalated.reason) == ("", Status.ESCALATED, "no_provider")


def test_a_withdrawal_that_overtakes_the_registration_is_kept(referral) -> None:
    case_id, need_id = str(uuid.uuid4()), str(uuid.uuid4())
    referral.handle(commands.WithdrawConsent(case_id, need_id, POLICE))
    referral.handle(commands.RouteCase(case_id, "22", "06673", [commands.NeedToRoute(need_id, POLICE, True)],
                                       RiskLevel.MEDIUM, False, "qn-worker-7"))
    assert referral.referrals(case_id) == []


def test_an_emergency_sends_police_and_shelter_first_on_the_urgent_lane(referral) -> None:
    case_id, _ = referral.register(MEDICAL, SHELTER, POLICE, emergency=True, risk=RiskLevel.HIGH)
    requested = referral.events("ReferralRequested")
    assert [e.service_type for _, _, e in requested] == [1, 4, 2]  # police, shelter, then medical
    assert {t for t, _, _ in requested} == {"referral.referrals-urgent.v1"}
    assert all(e.emergency for _, _, e in requested)
    police = referral.only(case_id, POLICE)
    assert police.accept_by == referral.clock.now + timedelta(minutes=15)
    [(_, _, reserve)] = referral.events("ReserveBed")
    assert reserve.emergency


def test_a_decline_goes_to_the_next_provider_unless_the_survivor_said_no(referral) -> None:
    case_id, _ = referral.register(POLICE)
    first = referral.only(case_id, POLICE)
    declined = referral.handle(commands.DeclineReferral(referral.agency(first.provider_id), first.referral_id, "d1",
                                                        DeclineReason.OUT_OF_AREA))
    assert (declined.status, declined.reason) == (Status.REJECTED, "out_of_area")
    second = referral.only(case_id, POLICE, status=Status.REQUESTED)
    assert second.provider_id == "qn-police-campha"  # same province; Bãi Cháy already declined
    assert (second.attempt, second.previous_referral_id) == (2, first.referral_id)

    referral.handle(commands.DeclineReferral(referral.agency(second.provider_id), second.referral_id, "d2",
                                             DeclineReason.SURVIVOR_DECLINED))
    assert [r for r in referral.referrals(case_id) if r.status is Status.REQUESTED] == []
    with pytest.raises(InvalidArgument, match="reason"):
        referral.handle(commands.DeclineReferral(referral.agency(second.provider_id), second.referral_id, "d3",
                                                 None))


def test_a_referral_not_accepted_in_time_expires_escalates_and_goes_to_the_next_provider(referral) -> None:
    case_id, _ = referral.register(POLICE, risk=RiskLevel.HIGH)
    first = referral.only(case_id, POLICE)
    referral.clock.advance(hours=1, minutes=59)
    assert referral.handle(commands.ExpireOverdue()) == 0
    referral.clock.advance(minutes=2)
    assert referral.handle(commands.ExpireOverdue()) == 1
    assert referral.handle(commands.ExpireOverdue()) == 0  # done once

    old = referral.handle(commands.GetReferral(referral.operator, first.referral_id))
    assert (old.status, old.reason) == (Status.ESCALATED, "not_accepted_in_time")
    changes = [(e.from_status, e.to_status) for _, _, e in referral.events("ReferralStatusChanged")]
    assert changes == [(pb.REFERRAL_STATUS_REQUESTED, pb.REFERRAL_STATUS_EXPIRED),
                       (pb.REFERRAL_STATUS_EXPIRED, pb.REFERRAL_STATUS_ESCALATED)]
    new = referral.only(case_id, POLICE, status=Status.REQUESTED)
    [(_, key, escalated)] = referral.events("ReferralEscalated")
    assert (key, escalated.reason, escalated.sla) == ("22", "not_accepted_in_time", "accept")
    assert (escalated.rerouted_referral_id, escalated.rerouted_provider_id) == (new.referral_id, new.provider_id)
    assert new.provider_id != first.provider_id and new.accept_by == referral.clock.now + timedelta(hours=2)


def test_an_accepted_referral_not_started_in_time_is_escalated_too(referral) -> None:
    case_id, _ = referral.register(POLICE, emergency=True)
    first = referral.accept(referral.only(case_id, POLICE))
    assert first.accept_by is None
    referral.clock.advance(minutes=61)
    referral.handle(commands.ExpireOverdue())
    [(_, _, escalated)] = referral.events("ReferralEscalated")
    assert (escalated.referral_id, escalated.sla, escalated.reason) == (first.referral_id, "start",
                                                                         "not_started_in_time")


def test_with_no_provider_at_all_the_supervisor_is_told_at_once_and_can_assign_one(referral) -> None:
    # Hà Tĩnh and its neighbours have no shelter for men.
    case_id, _ = referral.register(SHELTER, province="42", commune="18073", sex=Sex.MALE)
    stuck = referral.only(case_id, SHELTER)
    assert (stuck.provider_id, stuck.status, stuck.reason) == ("", Status.ESCALATED, "no_provider")
    [(_, _, escalated)] = referral.events("ReferralEscalated")
    assert (escalated.reason, escalated.rerouted_referral_id) == ("no_provider", "")

    supervisor = referral.person("ht-supervisor-1", Role.SUPERVISOR, "42")  # Hà Tĩnh's
    unresolved, _ = referral.handle(commands.ListEscalations(supervisor, "42", unresolved_only=True))
    assert [(r.referral_id, new) for r, new in unresolved] == [(stuck.referral_id, None)]
    with pytest.raises(PermissionDenied):
        referral.handle(commands.ListEscalations(referral.agency("ht-police"), "42"))
    with pytest.raises(InvalidArgument, match="provider_id"):
        referral.handle(commands.AssignProvider(supervisor, stuck.referral_id, "ht-police", "a1"))
    made = referral.handle(commands.AssignProvider(supervisor, stuck.referral_id, "ht-shelter-trusted", "a2"))
    assert (made.provider_id, made.previous_referral_id, made.status) == ("ht-shelter-trusted", stuck.referral_id,
                                                                          Status.REQUESTED)
    assert referral.handle(commands.AssignProvider(supervisor, stuck.referral_id, "ht-shelter-trusted",
                                                   "a2")).referral_id == made.referral_id  # idempotent
    assert referral.handle(commands.ListEscalations(supervisor, "42", unresolved_only=True))[0] == []


def test_routine_routing_logs_its_referrals_at_debug_and_a_supervisor_s_assignment_at_info(referral, caplog
                                                                                          ) -> None:
    caplog.set_level(logging.DEBUG, logger="referral")
    case_id, _ = referral.register(POLICE, MEDICAL)
    [routed] = [r for r in caplog.records if r.getMessage() == "referrals requested"]
    assert routed.levelno == logging.DEBUG  # each referral is in its ReferralRequested event and its history
    assert routed.fields == {"case_id": case_id, "referral_ids": [r.referral_id for r in referral.referrals(case_id)],
                             "provider_ids": ["qn-police-baichay", "qn-hospital"], "attempts": [1, 1]}
    caplog.clear()
    case_id, _ = referral.register(SHELTER, province="42", commune="18073", sex=Sex.MALE)
    supervisor = referral.person("ht-supervisor-1", Role.SUPERVISOR, "42")
    made = referral.handle(commands.AssignProvider(supervisor, referral.only(case_id, SHELTER).referral_id,
                                                   "ht-shelter-trusted", "a1"))
    assigned = [r for r in caplog.records if r.getMessage() == "referrals requested" and r.levelno == logging.INFO]
    assert [r.fields["referral_ids"] for r in assigned] == [[made.referral_id]]


def test_a_rejected_bed_goes_to_the_next_shelter_and_marks_the_first_full(referral) -> None:
    case_id, _ = referral.register(SHELTER)
    first = referral.only(case_id, SHELTER)
    referral.handle(commands.RecordBedRejected(first.referral_id, "qn-spc", BedRejectionReason.NO_CAPACITY))
    rejected = referral.handle(commands.GetReferral(referral.operator, first.referral_id))
    assert (rejected.status, rejected.reason) == (Status.REJECTED, "no_capacity")
    second = referral.only(case_id, SHELTER, status=Status.REQUESTED)
    assert second.shelter_id == "qn-campha-temp"
    assert referral.events("ReleaseBed") == []  # nothing was held
    # The next survivor is not sent to the full shelter first.
    other, _ = referral.register(SHELTER)
    assert referral.only(other, SHELTER).shelter_id == "qn-campha-temp"


def test_every_way_out_releases_a_held_bed(referral) -> None:
    def shelter_case() -> tuple[str, str, object]:
        case_id, needs = referral.register(SHELTER)
        r = referral.only(case_id, SHELTER)
        referral.handle(commands.RecordBedReserved(r.referral_id, r.shelter_id, free_after=3))
        return case_id, needs[SHELTER], r

    case_id, need_id, r = shelter_case()
    referral.handle(commands.WithdrawConsent(case_id, need_id, SHELTER))
    case_id, _, declined = shelter_case()
    referral.handle(commands.DeclineReferral(referral.agency(declined.provider_id), declined.referral_id, "x",
                                             DeclineReason.SURVIVOR_DECLINED))
    case_id, _, closed = shelter_case()
    referral.handle(commands.CloseCase(case_id))
    case_id, _, erased = shelter_case()
    referral.handle(commands.EraseCase(case_id))
    case_id, _, failed = shelter_case()
    referral.accept(failed)
    referral.handle(commands.ReportFailure(referral.agency(failed.provider_id), failed.referral_id, "f",
                                           FailureReason.NO_SHOW))
    released = {(e.referral_id, e.reason) for _, key, e in referral.events("ReleaseBed")}
    assert released == {(r.referral_id, "consent_withdrawn"), (declined.referral_id, "survivor_declined"),
                        (closed.referral_id, "case_closed"), (erased.referral_id, "case_erased"),
                        (failed.referral_id, "no_show")}
    assert {key for _, key, _ in referral.events("ReleaseBed")} == {"qn-spc"}


def test_shelter_s_own_events_move_the_referral(referral) -> None:
    case_id, _ = referral.register(SHELTER)
    r = referral.only(case_id, SHELTER)
    referral.handle(commands.RecordBedReserved(r.referral_id, r.shelter_id, free_after=5))
    referral.handle(commands.RecordBedOccupied(r.referral_id, r.shelter_id))
    arrived = referral.handle(commands.GetReferral(referral.operator, r.referral_id))
    assert (arrived.status, arrived.reason) == (Status.IN_SERVICE, "survivor_arrived")

    case_id, _ = referral.register(SHELTER)
    r = referral.only(case_id, SHELTER)
    referral.handle(commands.RecordBedReserved(r.referral_id, r.shelter_id, free_after=5))
    referral.handle(commands.RecordHoldExpired(r.referral_id, r.shelter_id))
    expired = referral.handle(commands.GetReferral(referral.operator, r.referral_id))
    assert (expired.status, expired.reason) == (Status.ESCALATED, "hold_expired")
    assert referral.only(case_id, SHELTER, status=Status.REQUESTED).previous_referral_id == r.referral_id


def test_an_agency_sees_and_acts_only_on_its_own_referrals(referral) -> None:
    case_id, _ = referral.register(POLICE)
    r = referral.only(case_id, POLICE)
    owner, other = referral.agency(r.provider_id), referral.agency("qn-police-halong")
    assert referral.handle(commands.GetReferral(owner, r.referral_id)).referral_id == r.referral_id
    with pytest.raises(NotFound) as theirs:
        referral.handle(commands.GetReferral(other, r.referral_id))
    guessed = str(uuid.uuid4())
    with pytest.raises(NotFound) as made_up:
        referral.handle(commands.GetReferral(other, guessed))
    # Another agency's id and a made-up id read exactly alike.
    assert str(theirs.value).replace(r.referral_id, "ID") == str(made_up.value).replace(guessed, "ID")
    with pytest.raises(NotFound):
        referral.handle(commands.AcceptReferral(other, r.referral_id, "steal"))
    # Asking for another agency's list reads as an empty one, not a refusal.
    assert referral.handle(commands.ListReferrals(other, provider_id=r.provider_id))[0] == []
    assert referral.handle(commands.ListReferrals(other))[0] == []
    assert [x.referral_id for x in referral.handle(commands.ListReferrals(owner))[0]] == [r.referral_id]
    with pytest.raises(PermissionDenied):
        referral.handle(commands.AcceptReferral(referral.operator, r.referral_id, "op"))
    with pytest.raises(InvalidArgument, match="case_id"):
        referral.handle(commands.ListReferrals(referral.operator))
    assert referral.handle(commands.GetReferral(owner, r.referral_id)).status is Status.REQUESTED


def test_changes_are_idempotent_on_the_request_id(referral) -> None:
    case_id, _ = referral.register(POLICE)
    r = referral.only(case_id, POLICE)
    owner = referral.agency(r.provider_id)
    first = referral.handle(commands.AcceptReferral(owner, r.referral_id, "req-1"))
    again = referral.handle(commands.AcceptReferral(owner, r.referral_id, "req-1"))
    assert (first.status, again.status, again.version) == (Status.ACCEPTED, Status.ACCEPTED, first.version)
    assert len(referral.events("ReferralStatusChanged")) == 1
    with pytest.raises(AlreadyExists, match=r"^client_request_id: already used for another request$"):
        referral.handle(commands.StartService(owner, r.referral_id, "req-1"))
    with pytest.raises(InvalidArgument, match=r"^client_request_id"):
        referral.handle(commands.StartService(owner, r.referral_id, ""))
    with pytest.raises(FailedPrecondition, match="is accepted; it cannot become accepted"):
        referral.handle(commands.AcceptReferral(owner, r.referral_id, "req-2"))


def test_the_agency_runs_the_lifecycle_to_the_end(referral) -> None:
    case_id, _ = referral.register(LEGAL_AID)
    r = referral.only(case_id, LEGAL_AID)
    owner = referral.agency(r.provider_id)
    with pytest.raises(FailedPrecondition, match="is requested; it cannot become in_service"):
        referral.handle(commands.StartService(owner, r.referral_id, "s0"))
    with pytest.raises(FailedPrecondition, match="progress"):
        referral.handle(commands.ReportProgress(owner, r.referral_id, "p0", Progress.CONTACT_MADE))
    referral.accept(r)
    referral.handle(commands.ReportProgress(owner, r.referral_id, "p1", Progress.APPOINTMENT_SCHEDULED))
    referral.handle(commands.StartService(owner, r.referral_id, "s1"))
    with pytest.raises(InvalidArgument, match="outcome"):
        referral.handle(commands.CompleteReferral(owner, r.referral_id, "c0", None))
    done = referral.handle(commands.CompleteReferral(owner, r.referral_id, "c1", Outcome.SERVICE_COMPLETED))
    assert (done.status, done.reason, done.progress) == (Status.COMPLETED, "service_completed",
                                                         Progress.APPOINTMENT_SCHEDULED)
    statuses = [e.to_status for _, _, e in referral.events("ReferralStatusChanged")]
    assert statuses == [pb.REFERRAL_STATUS_ACCEPTED, pb.REFERRAL_STATUS_IN_SERVICE, pb.REFERRAL_STATUS_COMPLETED]
    assert all(e.case_worker_id == "qn-worker-7" for _, _, e in referral.events("ReferralStatusChanged"))
    [(_, _, progress)] = referral.events("ReferralProgressReported")
    assert progress.progress == pb.PROGRESS_APPOINTMENT_SCHEDULED
    # A completed need is never routed again, whatever happens to its consent.
    referral.clock.advance(days=30)
    referral.handle(commands.ExpireOverdue())
    assert len(referral.referrals(case_id)) == 1


def test_contact_details_only_after_acceptance_and_while_consent_holds(referral) -> None:
    case_id, needs = referral.register(POLICE, LEGAL_AID)
    police, legal = referral.only(case_id, POLICE), referral.only(case_id, LEGAL_AID)
    owner = referral.agency(police.provider_id)
    with pytest.raises(FailedPrecondition, match="once you have accepted"):
        referral.handle(commands.GetSurvivorContact(owner, police.referral_id))
    with pytest.raises(NotFound):
        referral.handle(commands.GetSurvivorContact(referral.agency("qn-legal-aid"), police.referral_id))
    assert referral.contacts.reads == []

    referral.accept(police)
    contact = referral.handle(commands.GetSurvivorContact(owner, police.referral_id))
    assert (contact.phone, contact.phone_is_safe) == ("0912 345 678", True) and "0912" not in repr(contact)
    assert referral.contacts.reads == [{"case_id": case_id, "referral_id": police.referral_id,
                                        "recipient_id": "qn-police-baichay", "recipient_sector": "police",
                                        "service_type": POLICE,
                                        "purpose": "provider_accepted_referral"}]

    # Withdrawn: the accepted police referral is cancelled, the legal aid one already in service keeps going
    # but no contact details leave either.
    referral.accept(legal)
    lawyer = referral.agency(legal.provider_id)
    referral.handle(commands.StartService(lawyer, legal.referral_id, "s"))
    referral.handle(commands.WithdrawConsent(case_id, needs[POLICE], POLICE))
    referral.handle(commands.WithdrawConsent(case_id, needs[LEGAL_AID], LEGAL_AID))
    assert referral.only(case_id, POLICE).status is Status.CANCELLED
    assert referral.only(case_id, LEGAL_AID).status is Status.IN_SERVICE
    with pytest.raises(FailedPrecondition, match="accepted"):
        referral.handle(commands.GetSurvivorContact(owner, police.referral_id))
    with pytest.raises(FailedPrecondition, match="consent"):
        referral.handle(commands.GetSurvivorContact(lawyer, legal.referral_id))
    assert len(referral.contacts.reads) == 1


def test_a_rise_in_risk_brings_deadlines_forward(referral) -> None:
    case_id, _ = referral.register(POLICE, is_child=True)
    r = referral.only(case_id, POLICE)
    deadline = referral.clock.now + timedelta(hours=12)
    referral.handle(commands.UpdateRisk(case_id, RiskLevel.HIGH, emergency=False, child_deadline=deadline))
    tightened = referral.handle(commands.GetReferral(referral.operator, r.referral_id))
    assert tightened.accept_by == referral.clock.now + timedelta(hours=2)
    assert tightened.start_by == deadline
    referral.handle(commands.UpdateRisk(case_id, RiskLevel.LOW, emergency=False))
    assert referral.handle(commands.GetReferral(referral.operator, r.referral_id)).accept_by == tightened.accept_by


def test_closing_cancels_what_has_not_started_and_erasing_everything(referral) -> None:
    case_id, _ = referral.register(POLICE, LEGAL_AID)
    legal = referral.accept(referral.only(case_id, LEGAL_AID))
    referral.handle(commands.StartService(referral.agency(legal.provider_id), legal.referral_id, "s"))
    referral.handle(commands.CloseCase(case_id))
    assert {r.service_type: (r.status, r.reason) for r in referral.referrals(case_id)} == {
        POLICE: (Status.CANCELLED, "case_closed"), LEGAL_AID: (Status.IN_SERVICE, "")}
    referral.handle(commands.EraseCase(case_id))
    assert referral.only(case_id, LEGAL_AID).status is Status.CANCELLED
    # A late registration of an erased case routes nothing.
    referral.handle(commands.RouteCase(case_id, "22", "06673", [commands.NeedToRoute(str(uuid.uuid4()), MEDICAL,
                                                                                     True)],
                                       RiskLevel.HIGH, False, "w"))
    assert len(referral.referrals(case_id)) == 2


def test_a_child_registered_at_serious_risk_has_twelve_hours_at_most(referral) -> None:
    case_id, need_id = str(uuid.uuid4()), str(uuid.uuid4())
    deadline = referral.clock.now + timedelta(hours=12)
    referral.handle(commands.RouteCase(case_id, "22", "06793", [commands.NeedToRoute(need_id, SHELTER, True)],
                                       RiskLevel.LOW, False, "qn-worker-7", Survivor(is_child=True, sex=Sex.FEMALE),
                                       child_deadline=deadline))
    shelter = referral.only(case_id, SHELTER)
    assert (shelter.accept_by, shelter.start_by) == (deadline, deadline)
    assert shelter.provider_id == "qn-shelter-spc"  # Cẩm Phả's shelter is for women only
    referral.clock.now = deadline
    referral.handle(commands.ExpireOverdue())
    assert referral.only(case_id, SHELTER, referral_id=shelter.referral_id).status is Status.ESCALATED


def test_a_shelter_need_goes_only_to_a_shelter_offering_what_her_assessment_says_she_needs(referral) -> None:
    # Registered without needs, then assessed (intake's CaseAssessed), then a planned shelter need is added: the
    # need's event does not carry her accessibility needs, so what the assessment said must be kept.
    case_id, _ = referral.register()
    referral.handle(commands.NoteAccessibility(case_id, frozenset({"wheelchair_space"})))
    need_id = str(uuid.uuid4())
    referral.handle(commands.AddNeed(case_id, "22", "06673", commands.NeedToRoute(need_id, SHELTER, True),
                                     RiskLevel.MEDIUM, False, "qn-worker-7", Survivor(sex=Sex.FEMALE)))
    assert referral.only(case_id, SHELTER).provider_id == "qn-shelter-spc"  # Cẩm Phả's has no wheelchair space
    case_id, _ = referral.register()
    referral.handle(commands.NoteAccessibility(case_id, frozenset({"sign_language"})))  # no shelter offers it
    referral.handle(commands.AddNeed(case_id, "22", "06673", commands.NeedToRoute(str(uuid.uuid4()), SHELTER, True),
                                     RiskLevel.MEDIUM, False, "qn-worker-7", Survivor(sex=Sex.FEMALE)))
    # Escalated (no provider), though both Quảng Ninh shelters have beds: her need outlived the NeedAdded.
    assert referral.only(case_id, SHELTER).status is Status.ESCALATED
