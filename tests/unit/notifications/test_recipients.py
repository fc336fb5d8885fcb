"""Who is told: the right recipients for each event type, and the survivor only where consent covers it."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications.domain.messages import (
    Addressee,
    BedOutcome,
    BedUpdate,
    EmergencyCase,
    Escalation,
    NewReferral,
    NoticeKind,
    ReferralStatus,
    Role,
    StatusChange,
    Urgency,
    recipients_for,
)
from notifications.domain.safe_contact import SurvivorProfile
from refnet_platform.vocabulary import ServiceType

REFERRAL = str(uuid.UUID(int=1))
CASE = str(uuid.UUID(int=2))
CONSENTING = SurvivorProfile(CASE, contact_consented=True, services=frozenset(ServiceType))


def change(to: ReferralStatus, frm: ReferralStatus | None = ReferralStatus.REQUESTED, **kw: Any) -> StatusChange:
    base = StatusChange(
        event_id="ev-1", referral_id=REFERRAL, case_id=CASE, provider_id="prov-7", province_code="79",
        from_status=frm, to_status=to, reason="", case_worker_id="cw-3", service_type=ServiceType.MEDICAL,
    )
    return replace(base, **kw)


def roles(addressees: tuple[Addressee, ...]) -> set[tuple[Role, str, NoticeKind]]:
    return {(a.role, a.recipient_id, a.kind) for a in addressees}


def test_new_referral_tells_the_providers_duty_contact_only() -> None:
    event = NewReferral("ev", REFERRAL, CASE, ServiceType.LEGAL_AID, "prov-1", "01", Urgency.EMERGENCY, "cw-1")
    assert recipients_for(event, CONSENTING) == (Addressee(Role.PROVIDER, "prov-1", NoticeKind.REFERRAL_NEW),)


@pytest.mark.parametrize("to", list(ReferralStatus))
def test_every_status_change_tells_the_referring_case_worker(to: ReferralStatus) -> None:
    assert (Role.CASE_WORKER, "cw-3", NoticeKind.REFERRAL_STATUS) in roles(recipients_for(change(to)))


def test_expiry_tells_the_case_worker_and_frees_the_provider() -> None:
    got = roles(recipients_for(change(ReferralStatus.EXPIRED, reason="not_accepted_in_time")))
    assert got == {
        (Role.CASE_WORKER, "cw-3", NoticeKind.REFERRAL_STATUS),
        (Role.PROVIDER, "prov-7", NoticeKind.REFERRAL_CANCELLED),
    }


def test_the_supervisor_hears_of_an_escalation_once_from_the_escalation_event() -> None:
    # The referral service moves REQUESTED -> EXPIRED -> ESCALATED and publishes ReferralEscalated:
    # the transitions go to the case worker, the escalation to the supervisor, exactly once.
    transitions = [change(ReferralStatus.EXPIRED), change(ReferralStatus.ESCALATED, ReferralStatus.EXPIRED)]
    for transition in transitions:
        assert all(a.role is not Role.SUPERVISOR for a in recipients_for(transition))
    missed = Escalation("ev", REFERRAL, CASE, "79", ServiceType.MEDICAL, "prov-7", "not_accepted_in_time", "accept",
                        rerouted=True, case_worker_id="cw-3")
    assert recipients_for(missed) == (Addressee(Role.SUPERVISOR, "79", NoticeKind.SLA_BREACHED),)
    nobody = Escalation("ev", REFERRAL, CASE, "79", ServiceType.SHELTER, "", "no_provider")
    assert recipients_for(nobody) == (Addressee(Role.SUPERVISOR, "79", NoticeKind.REFERRAL_ESCALATED),)
    hold = Escalation("ev", REFERRAL, CASE, "79", ServiceType.SHELTER, "sh-1", "hold_expired")
    assert recipients_for(hold)[0].kind is NoticeKind.SLA_BREACHED


def test_cancellation_tells_the_provider_to_stand_down() -> None:
    got = roles(recipients_for(change(ReferralStatus.CANCELLED, reason="consent_withdrawn")))
    assert (Role.PROVIDER, "prov-7", NoticeKind.REFERRAL_CANCELLED) in got
    assert not any(role is Role.SUPERVISOR for role, _, _ in got)


@pytest.mark.parametrize(
    ("outcome", "kind"),
    [
        (BedOutcome.RESERVED, NoticeKind.BED_RESERVED),
        (BedOutcome.REJECTED, NoticeKind.BED_REJECTED),
        (BedOutcome.RELEASED, NoticeKind.BED_RELEASED),
    ],
)
def test_bed_events_tell_the_case_worker(outcome: BedOutcome, kind: NoticeKind) -> None:
    event = BedUpdate("ev", outcome, REFERRAL, CASE, "sh-1", "01", "", datetime(2025, 1, 1, tzinfo=UTC), "cw-9")
    assert recipients_for(event, CONSENTING) == (Addressee(Role.CASE_WORKER, "cw-9", kind),)


def test_without_a_case_worker_the_supervisor_is_told_instead() -> None:
    event = BedUpdate("ev", BedOutcome.REJECTED, REFERRAL, CASE, "sh-1", "01", "no_capacity")
    assert recipients_for(event) == (Addressee(Role.SUPERVISOR, "01", NoticeKind.BED_REJECTED),)
    got = recipients_for(change(ReferralStatus.ESCALATED, case_worker_id=""))
    assert got == (Addressee(Role.SUPERVISOR, "79", NoticeKind.REFERRAL_STATUS),)


def test_emergency_case_tells_the_supervisor() -> None:
    assert recipients_for(EmergencyCase("ev", CASE, "01", "cw-1", 3)) == (
        Addressee(Role.SUPERVISOR, "01", NoticeKind.CASE_EMERGENCY),
    )


def test_survivor_is_told_of_acceptance_only_when_consent_covers_the_service() -> None:
    accepted = change(ReferralStatus.ACCEPTED)
    assert Addressee(Role.SURVIVOR, CASE, NoticeKind.SURVIVOR_CONFIRMED) in recipients_for(accepted, CONSENTING)

    not_this_service = SurvivorProfile(CASE, contact_consented=True, services=frozenset({ServiceType.LEGAL_AID}))
    no_contact = SurvivorProfile(CASE, contact_consented=False, services=frozenset(ServiceType))
    for profile in (None, not_this_service, no_contact):
        assert all(a.role is not Role.SURVIVOR for a in recipients_for(accepted, profile))
    unknown_service = change(ReferralStatus.ACCEPTED, service_type=None)
    assert all(a.role is not Role.SURVIVOR for a in recipients_for(unknown_service, CONSENTING))


def test_survivor_is_told_when_an_accepted_referral_falls_through_but_not_after_her_own_choice() -> None:
    fell = change(ReferralStatus.FAILED, ReferralStatus.ACCEPTED, reason="lost_contact")
    assert Addressee(Role.SURVIVOR, CASE, NoticeKind.SURVIVOR_CHANGED) in recipients_for(fell, CONSENTING)
    for reason in ("consent_withdrawn", "case_erased", "survivor_declined"):
        hers = change(ReferralStatus.CANCELLED, ReferralStatus.ACCEPTED, reason=reason)
        assert all(a.role is not Role.SURVIVOR for a in recipients_for(hers, CONSENTING))
    never_accepted = change(ReferralStatus.REJECTED, ReferralStatus.REQUESTED)
    assert all(a.role is not Role.SURVIVOR for a in recipients_for(never_accepted, CONSENTING))


def test_bed_and_case_events_never_reach_the_survivor() -> None:
    bed = BedUpdate("ev", BedOutcome.RESERVED, REFERRAL, CASE, "sh", "01", case_worker_id="cw")
    assert all(a.role is not Role.SURVIVOR for a in recipients_for(bed, CONSENTING))
    assert all(a.role is not Role.SURVIVOR for a in recipients_for(EmergencyCase("ev", CASE, "01"), CONSENTING))


@given(
    to=st.sampled_from(ReferralStatus),
    frm=st.none() | st.sampled_from(ReferralStatus),
    reason=st.sampled_from(["", "no_capacity", "consent_withdrawn", "lost_contact", "weird"]),
    case_worker=st.sampled_from(["", "cw-1"]),
    provider=st.sampled_from(["", "prov-1"]),
    service=st.none() | st.sampled_from(ServiceType),
    consent=st.booleans(),
    consented_services=st.frozensets(st.sampled_from(ServiceType)),
)
def test_status_change_recipients_invariants(
    to: ReferralStatus,
    frm: ReferralStatus | None,
    reason: str,
    case_worker: str,
    provider: str,
    service: ServiceType | None,
    consent: bool,
    consented_services: frozenset[ServiceType],
) -> None:
    event = change(to, frm, reason=reason, case_worker_id=case_worker, provider_id=provider, service_type=service)
    profile = SurvivorProfile(CASE, contact_consented=consent, services=consented_services)
    got = recipients_for(event, profile)
    keys = [(a.role, a.recipient_id) for a in got]
    assert len(keys) == len(set(keys)), "one notice per recipient per event"
    assert all(a.recipient_id for a in got)
    # Someone on the staff side always hears of a status change.
    assert any(a.role in (Role.CASE_WORKER, Role.SUPERVISOR) for a in got)
    if case_worker:
        assert (Role.CASE_WORKER, case_worker) in keys
    survivor = [a for a in got if a.role is Role.SURVIVOR]
    if survivor:
        assert service is not None and consent and service in consented_services
        assert survivor[0].kind.for_survivor
        assert survivor[0].recipient_id == CASE


def test_a_referral_routed_to_no_provider_waits_for_its_escalation_event() -> None:
    # ReferralRequested without a provider is followed by ReferralEscalated("no_provider"), which
    # tells the supervisor: telling them here too would be a second notice for the same thing.
    event = NewReferral("ev", REFERRAL, CASE, ServiceType.SHELTER, "", "92", Urgency.EMERGENCY, "cw-1")
    assert recipients_for(event) == ()
