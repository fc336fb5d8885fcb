"""The one protobuf <-> domain mapping: what each consumed event becomes, and where each event goes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from referral.adapters import proto_mapping
from referral.domain import commands, events
from referral.domain.model import Referral, Status, Survivor
from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import events_pb2 as intake_events
from refnet.shelter.v1 import events_pb2 as shelter_events
from refnet_platform.errors import InvalidArgument
from refnet_platform.vocabulary import BedRejectionReason, RiskLevel, ServiceType, Sex, TargetGroup

AT = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)


def stamp(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def test_a_registered_case_keeps_each_need_s_consent_and_the_child_deadline() -> None:
    message = intake_events.CaseRegistered(
        case_id="c1", province_code="22", commune_code="06673", is_child=True, sex=t.SEX_FEMALE,
        risk_level=t.RISK_LEVEL_HIGH, emergency=True, case_worker_id="w1", child_protection_deadline=stamp(AT),
        needs=[intake_events.NeedRef(need_id="n1", service_type=t.SERVICE_TYPE_SHELTER, consented=True,
                                     consent_id="k1", recipient_sectors=["shelter"], consent_expires_at=stamp(AT)),
               intake_events.NeedRef(need_id="n2", service_type=t.SERVICE_TYPE_LEGAL_AID),
               intake_events.NeedRef(need_id="n3")])  # an unknown service is never routed
    command = proto_mapping.command_for(message)
    assert command == commands.RouteCase(
        "c1", "22", "06673", [commands.NeedToRoute("n1", ServiceType.SHELTER, True, "k1", frozenset({"shelter"}), AT),
                              commands.NeedToRoute("n2", ServiceType.LEGAL_AID, False)],
        RiskLevel.HIGH, True, "w1", Survivor(is_child=True, sex=Sex.FEMALE), child_deadline=AT)


def test_every_other_consumed_event() -> None:
    assert proto_mapping.command_for(intake_events.ConsentWithdrawn(
        case_id="c1", need_id="n1", service_type=t.SERVICE_TYPE_SHELTER, consent_id="k1")) == \
        commands.WithdrawConsent("c1", "n1", ServiceType.SHELTER, "k1")
    assert proto_mapping.command_for(intake_events.ConsentGiven(
        case_id="c1", need_id="n1", service_type=t.SERVICE_TYPE_POLICE_PROTECTION, recipient_sectors=["police"],
        consent_id="k2")) == commands.GiveConsent("c1", "n1", ServiceType.POLICE_PROTECTION, frozenset({"police"}),
                                                  None, "k2")
    assert proto_mapping.command_for(intake_events.RiskUpdated(case_id="c1")) == \
        commands.UpdateRisk("c1", RiskLevel.MEDIUM, False, None)  # unspecified risk: treated as medium
    assert proto_mapping.command_for(intake_events.CaseErased(case_id="c1")) == commands.EraseCase("c1")
    assert proto_mapping.command_for(shelter_events.CapacityChanged(
        shelter_id="s1", target_group=t.TARGET_GROUP_CHILDREN, capacity=6, reserved=2, occupied=1)) == \
        commands.RecordCapacity("s1", "", TargetGroup.CHILDREN, 6, 2, 1)
    assert proto_mapping.command_for(shelter_events.BedReserved(
        referral_id="r1", shelter_id="s1", target_group=t.TARGET_GROUP_WOMEN, free_after=3)) == \
        commands.RecordBedReserved("r1", "s1", 3, TargetGroup.WOMEN)
    assert proto_mapping.command_for(shelter_events.HoldExpired(
        referral_id="r1", shelter_id="s1", target_group=t.TARGET_GROUP_MEN)) == \
        commands.RecordHoldExpired("r1", "s1", TargetGroup.MEN)
    assert proto_mapping.command_for(shelter_events.BedReleased(referral_id="r1", shelter_id="s1")) == \
        commands.RecordBedReleased("r1", "s1", None)  # no pool named: the referral still moves
    assert proto_mapping.command_for(shelter_events.BedReservationRejected(
        referral_id="r1", shelter_id="s1", reason="no_capacity")) == commands.RecordBedRejected(
            "r1", "s1", BedRejectionReason.NO_CAPACITY)
    # A reason this build does not know is no reason: the referral is still rejected (as for no capacity), but no
    # pool is marked full on its word.
    assert proto_mapping.command_for(shelter_events.BedReservationRejected(
        referral_id="r1", shelter_id="s1", reason="closed_for_renovation")) == commands.RecordBedRejected(
            "r1", "s1", None)
    assert proto_mapping.command_for(intake_events.CallLogged(call_id="x")) is None


def test_counts_that_name_no_bed_pool_are_refused_naming_the_field() -> None:
    with pytest.raises(InvalidArgument) as refused:
        proto_mapping.command_for(shelter_events.CapacityChanged(shelter_id="s1", capacity=6))
    assert refused.value.field == "target_group"


def referral(emergency: bool) -> Referral:
    return Referral("r1", "c1", "n1", ServiceType.SHELTER, "qn-shelter-spc", "22", Status.REQUESTED, emergency,
                    RiskLevel.HIGH, "w1", AT, shelter_id="qn-spc", updated_at=AT)


def test_referral_events_by_province_emergencies_on_the_urgent_lane_bed_commands_by_shelter() -> None:
    normal = proto_mapping.event_to_record(events.ReferralRequested(referral(False)))
    urgent = proto_mapping.event_to_record(events.ReferralStatusChanged(referral(True), Status.REQUESTED))
    bed = proto_mapping.event_to_record(events.BedRequested(referral(True), AT, TargetGroup.WOMEN_WITH_CHILDREN))
    release = proto_mapping.event_to_record(events.BedReleaseRequested(referral(False), "consent_withdrawn"))
    assert [(r.topic, r.key) for r in (normal, urgent, bed, release)] == [
        ("referral.referrals.v1", "22"), ("referral.referrals-urgent.v1", "22"),
        ("shelter.bed-commands.v1", "qn-spc"), ("shelter.bed-commands.v1", "qn-spc")]
    assert bed.message.target_group == t.TARGET_GROUP_WOMEN_WITH_CHILDREN and bed.message.emergency
    assert release.message.reason == "consent_withdrawn"


def test_case_work_events_bring_accessibility_needs_and_a_new_case_worker() -> None:
    assessed = intake_events.CaseAssessed(case_id="c1", province_code="42", accessibility_needs=["step_free", "lift"])
    # An unknown code is dropped.
    assert proto_mapping.command_for(assessed) == commands.NoteAccessibility("c1", frozenset({"step_free"}))
    moved = intake_events.CaseReassigned(case_id="c1", province_code="42", to_case_worker_id="ht-worker-3")
    assert proto_mapping.command_for(moved) == commands.ReassignCaseWorker("c1", "ht-worker-3")
    assert proto_mapping.command_for(intake_events.FollowUpRecorded(case_id="c1", province_code="42")) is None


def test_an_imported_case_is_never_routed_nor_closed_again() -> None:
    # A record from before refnet (intake's ImportHistory): reports count it, referral does nothing with it.
    need = intake_events.NeedRef(need_id="n1", service_type=t.SERVICE_TYPE_POLICE_PROTECTION, consented=True)
    past = intake_events.CaseRegistered(case_id="c1", province_code="22", needs=[need], imported=True,
                                        emergency=True)
    assert proto_mapping.command_for(past) is None
    assert proto_mapping.command_for(intake_events.CaseClosed(case_id="c1", imported=True)) is None
    past.imported = False
    assert isinstance(proto_mapping.command_for(past), commands.RouteCase)
