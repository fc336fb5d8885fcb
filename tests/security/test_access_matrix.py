"""Least privilege, cell by cell: every caller by every RPC of every service by a subject in and out of
the caller's remit, over real mutual-TLS sockets with real tokens from the real identity provider.

What each cell must answer is read from the services' own authorization tables (the ones rendered
into their READMEs): a role the row does not list gets PERMISSION_DENIED; within its scope the call
goes through (OK, or the domain's own refusal of a state change); out of scope a record answers
exactly as a made-up id does (NOT_FOUND, same words) and a list leaves it out. A front door without
a person's token, and a person's role on a certificate, get UNAUTHENTICATED everywhere.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from intake.service_layer.authorization import TABLE as INTAKE
from notifications.service_layer.authorization import TABLE as NOTIFICATIONS
from referral.service_layer.authorization import TABLE as REFERRAL
from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import casework_service_pb2 as cw_pb
from refnet.intake.v1 import casework_service_pb2_grpc as cw_grpc
from refnet.intake.v1 import contact_service_pb2 as contact_pb
from refnet.intake.v1 import contact_service_pb2_grpc as contact_grpc
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet.intake.v1 import types_pb2 as it
from refnet.notifications.v1 import notifications_service_pb2 as notifications_pb
from refnet.notifications.v1 import notifications_service_pb2_grpc as notifications_grpc
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet.referral.v1 import referral_service_pb2_grpc as referral_grpc
from refnet.shelter.v1 import shelter_service_pb2 as shelter_pb
from refnet.shelter.v1 import shelter_service_pb2_grpc as shelter_grpc
from refnet_dev.network import Network
from refnet_dev.util import eventually
from refnet_platform.caller import Role
from shelter.service_layer.authorization import TABLE as SHELTER

pytestmark = pytest.mark.e2e

QN, BAI_CHAY, HT, HT_COMMUNE = "22", "06673", "42", "18100"
QN_SHELTER, HT_SHELTER = "qn-spc", "ht-trusted-tranphu"
# Their beds on the shared network (tests/conftest.py: the demo's 6 and 3, plus SHARED_EXTRA_BEDS): the capacity
# UpdateAvailability sets leaves the beds other modules' cases hold.
QN_SHELTER_BEDS, HT_SHELTER_BEDS = 6 + 40, 3 + 40
TABLES = {"intake": INTAKE, "referral": REFERRAL, "shelter": SHELTER, "notifications": NOTIFICATIONS}
SERVICE_OF = {"IntakeService": "intake", "CaseContactService": "intake", "CaseWorkService": "intake",
              "ReferralService": "referral",
              "EscalationService": "referral", "DirectoryService": "referral", "ShelterService": "shelter",
              "NotificationsService": "notifications"}
STUBS = {"IntakeService": intake_grpc.IntakeServiceStub, "CaseContactService": contact_grpc.CaseContactServiceStub,
         "CaseWorkService": cw_grpc.CaseWorkServiceStub,
         "ReferralService": referral_grpc.ReferralServiceStub, "EscalationService": referral_grpc.EscalationServiceStub,
         "DirectoryService": referral_grpc.DirectoryServiceStub, "ShelterService": shelter_grpc.ShelterServiceStub,
         "NotificationsService": notifications_grpc.NotificationsServiceStub}
STREAMS = {"WatchReferrals", "WatchAvailability", "WatchNotices"}
# The domain's own refusals of a state change: the caller got past authorization to the record.
STATE_REFUSALS = {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.UNAVAILABLE}


@dataclass(frozen=True)
class Who:
    """A caller of the matrix: a person (a realm user through the front door) or a machine (a certificate)."""

    label: str
    role: Role
    person: bool
    # For the scope checks: the provinces a person covers; the organisation an agency or shelter is.
    provinces: frozenset[str] = frozenset()
    organisation: str = ""
    token: bool = True  # a front door without a person's token
    cert_role: str = ""  # a person's role on a certificate


CALLERS = (
    Who("qn-operator", Role.OPERATOR, True, frozenset({QN})),
    Who("national-111-operator", Role.OPERATOR, True, frozenset({"*"})),
    Who("qn-supervisor", Role.SUPERVISOR, True, frozenset({QN})),
    Who("ops-oncall", Role.OPS, True, frozenset({"*"})),
    Who("qn-police-baichay", Role.AGENCY, True, organisation="qn-police-baichay"),
    Who("qn-spc-staff", Role.SHELTER, True, organisation=QN_SHELTER),
    Who("agency:qn-police-baichay", Role.AGENCY, False, organisation="qn-police-baichay"),
    Who("shelter:qn-spc", Role.SHELTER, False, organisation=QN_SHELTER),
    Who("service:referral", Role.SERVICE, False),
    Who("service:notifications", Role.SERVICE, False),  # the SMS door
    Who("gateway without a token", Role.GATEWAY, False, token=False),
    Who("operator certificate", Role.OPERATOR, False, cert_role="operator"),
)


@dataclass
class World:
    """The records the cells are about: a Quảng Ninh case and a Hà Tĩnh case with their referrals."""

    network: Network
    qn_case: Any
    ht_case: Any
    referrals: dict[str, Any]  # "qn-police", "qn-medical", "qn-shelter", "ht-police", "ht-shelter"
    channels: dict[tuple[str, str], grpc.Channel] = field(default_factory=dict)

    def channel(self, who: Who, service: str) -> grpc.Channel:
        key = (who.label, service)
        if key not in self.channels:
            net = self.network
            if who.cert_role:
                self.channels[key] = grpc.secure_channel(net.address(service), _cert(net, who.label, who.cert_role))
            elif not who.token:
                self.channels[key] = net.channel(service, "matrix-door", "gateway")
            elif who.person:
                self.channels[key] = net.person_channel(service, who.label)
            else:
                role, _, subject = who.label.partition(":")
                self.channels[key] = net.channel(service, subject, role)
        return self.channels[key]

    def stub(self, who: Who, service_name: str) -> Any:
        return STUBS[service_name](self.channel(who, SERVICE_OF[service_name]))


def _cert(network: Network, subject: str, role: str) -> grpc.ChannelCredentials:
    from refnet_platform.identity import channel_credentials

    cert, key = network.pki.client(subject.replace(" ", "-"), role)
    return channel_credentials(network.pki.ca, cert, key)


def rid() -> str:
    return str(uuid.uuid4())


def register(intake: Any, province: str, commune: str, needs: list[int]) -> Any:
    return intake.RegisterCase(intake_pb.RegisterCaseRequest(
        client_request_id=rid(), province_code=province, commune_code=commune,
        case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], risk_level=t.RISK_LEVEL_MEDIUM,
        survivor=intake_pb.Survivor(is_child=False, age=30, sex=t.SEX_FEMALE),
        needs=[intake_pb.Need(service_type=s, consented=True) for s in needs],
        contact=intake_pb.Contact(name="Matrix Survivor", phone=MATRIX_PHONE, phone_is_safe=True),
        case_worker_id="qn-worker-7"), timeout=10).case


@pytest.fixture(scope="module")
def world(shared_network: Network) -> Iterator[World]:
    network = shared_network  # tests/conftest.py
    with network.person_channel("intake", "national-111-operator") as intake_ch, \
            network.person_channel("referral", "national-111-operator") as referral_ch, \
            network.channel("referral", "qn-police-baichay", "agency") as police_ch:
        intake = intake_grpc.IntakeServiceStub(intake_ch)
        referrals = referral_grpc.ReferralServiceStub(referral_ch)
        needs = [t.SERVICE_TYPE_POLICE_PROTECTION, t.SERVICE_TYPE_MEDICAL, t.SERVICE_TYPE_SHELTER]
        qn_case = register(intake, QN, BAI_CHAY, needs)
        ht_case = register(intake, HT, HT_COMMUNE, [t.SERVICE_TYPE_POLICE_PROTECTION, t.SERVICE_TYPE_SHELTER])

        def routed(case: Any, count: int) -> list[Any] | None:
            found = list(referrals.ListReferrals(referral_pb.ListReferralsRequest(case_id=case.case_id)).referrals)
            return found if len(found) == count and all(r.provider_id for r in found) else None

        by_type = {}
        for name, case, count in (("qn", qn_case, 3), ("ht", ht_case, 2)):
            for r in eventually(lambda c=case, n=count: routed(c, n), f"the {name} case's referrals", timeout=60):
                kind = {t.SERVICE_TYPE_POLICE_PROTECTION: "police", t.SERVICE_TYPE_MEDICAL: "medical",
                        t.SERVICE_TYPE_SHELTER: "shelter"}[r.service_type]
                by_type[f"{name}-{kind}"] = r
        assert by_type["qn-police"].provider_id == "qn-police-baichay"
        assert by_type["qn-medical"].provider_id == "qn-hospital"
        # The police accept, so a contact read has an accepted referral on intake's own record.
        referral_grpc.ReferralServiceStub(police_ch).AcceptReferral(referral_pb.AcceptReferralRequest(
            referral_id=by_type["qn-police"].referral_id, request_id=rid()), timeout=10)
    world = World(network, qn_case, ht_case, by_type)
    contact = CELLS["GetCaseContact"].build[0](world, CALLERS[0])

    def accepted_on_intakes_record() -> bool:
        try:
            world.stub(Who("service:referral", Role.SERVICE, False), "CaseContactService").GetCaseContact(
                contact, timeout=10)
            return True
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:  # "not accepted on intake's record yet"
                raise
            return False

    eventually(accepted_on_intakes_record, "intake to record the acceptance", timeout=60)
    # Both shelters hold a bed for their case before any cell runs.
    with network.channel("shelter", QN_SHELTER, "shelter") as qn_ch, \
            network.channel("shelter", HT_SHELTER, "shelter") as ht_ch:
        for channel, shelter, case in ((qn_ch, QN_SHELTER, qn_case), (ht_ch, HT_SHELTER, ht_case)):
            eventually(lambda c=channel, s=shelter, k=case: any(
                r.case_id == k.case_id for r in shelter_grpc.ShelterServiceStub(c).ListReservations(
                    shelter_pb.ListReservationsRequest(shelter_id=s)).reservations), f"a bed held at {shelter}",
                timeout=60)
    yield world
    for channel in world.channels.values():
        channel.close()


# --- what each RPC is called with, in and out of a caller's remit -------------------------------

# A cell's request, built from the world and the caller; None: no such subject for this caller.
Build = Callable[[World, Who], Any]


def _province_of(world: World, who: Who, inside: bool) -> Any:
    """The case in (Quảng Ninh) or out of (Hà Tĩnh) the caller's provinces; None if it covers both."""
    if inside:
        return world.qn_case
    return None if "*" in who.provinces or HT in who.provinces else world.ht_case


def _referral(world: World, who: Who, inside: bool, kind: str = "police") -> Any:
    """A referral in or out of the caller's remit: by province for case workers, by organisation for
    agencies (qn-hospital's is not the police's), by shelter for shelters."""
    if who.role in (Role.AGENCY,):
        return world.referrals["qn-police" if inside else "qn-medical"]
    if who.role is Role.SHELTER:
        return world.referrals["qn-shelter" if inside else "ht-shelter"]
    case = _province_of(world, who, inside)
    if case is None:
        return None
    return world.referrals[f"{'qn' if case is world.qn_case else 'ht'}-{kind}"]


def on_case(make: Callable[[Any], Any]) -> tuple[Build, Build]:
    def build(inside: bool) -> Build:
        def request(world: World, who: Who) -> Any:
            case = _province_of(world, who, inside)
            return None if case is None else make(case)
        return request
    return build(True), build(False)


def on_referral(make: Callable[[str], Any], kind: str = "police") -> tuple[Build, Build]:
    def build(inside: bool) -> Build:
        def request(world: World, who: Who) -> Any:
            referral = _referral(world, who, inside, kind)
            return None if referral is None else make(referral.referral_id)
        return request
    return build(True), build(False)


def fixed(request: Callable[[], Any], outside: Callable[[World, Who], Any] | None = None) -> tuple[Build, Build]:
    return (lambda world, who: request()), (outside or (lambda world, who: None))


def need_of(case: Any, service_type: int) -> str:
    """The case's need of that service, else its first (out of scope, which need does not matter)."""
    return str(next((n.need_id for n in case.needs if n.service_type == service_type), case.needs[0].need_id))


def log_call(province: str) -> Any:
    return intake_pb.LogCallRequest(client_request_id=rid(), province_code=province, call=intake_pb.CallDetails(
        channel=it.CALL_CHANNEL_PROVINCIAL_HOTLINE, topic=it.CALL_TOPIC_DOMESTIC_VIOLENCE, anonymous=True),
        outcome=it.CALL_OUTCOME_ADVICE_GIVEN)


def register_request(province: str, commune: str) -> Any:
    return intake_pb.RegisterCaseRequest(
        client_request_id=rid(), province_code=province, commune_code=commune,
        case_types=[t.CASE_TYPE_COUNSELLING_REQUEST], risk_level=t.RISK_LEVEL_LOW,
        survivor=intake_pb.Survivor(is_child=False, age=40, sex=t.SEX_FEMALE), case_worker_id="qn-worker-7")


def import_request(province: str, commune: str) -> Any:
    """One past case of the line's own province, from before refnet (ImportHistory)."""
    return intake_pb.ImportHistoryRequest(cases=[intake_pb.ImportedCase(
        idempotency_key=f"matrix:{rid()}", province_code=province, commune_code=commune,
        case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], risk_level=t.RISK_LEVEL_LOW,
        survivor=intake_pb.Survivor(is_child=False, age_band="18-59", sex=t.SEX_FEMALE),
        registered_at=Timestamp(seconds=1_754_006_400))])  # 2025-08-01: codes on the 2025 map


def _outside_province(make: Callable[[], Any]) -> Build:
    return lambda world, who: None if "*" in who.provinces or HT in who.provinces else make()


def _feed_outside(world: World, who: Who) -> Any:
    if who.role is Role.SUPERVISOR:
        return None if "*" in who.provinces else notifications_pb.ListNoticesRequest(recipient_id=HT)
    return notifications_pb.ListNoticesRequest(recipient_id="ht-police")


SMS_DOOR = "service:notifications"
DEMO_SHELTER_PHONE, DEMO_DUTY_PHONE = "0900 100 001", "0900 200 001"  # demo/directory.json: qn-spc, qn-police-baichay
MATRIX_PHONE, UNKNOWN_PHONE = "0900000999", "0900 999 000"


def _door(inside: Callable[[], Any], outside: Callable[[], Any]) -> tuple[Build, Build]:
    """The SMS door's calls: for the door a known and an unknown phone; no other caller has a subject (their
    role's answer is checked by the made-up call)."""
    return ((lambda world, who: inside() if who.label == SMS_DOOR else None),
            (lambda world, who: outside() if who.label == SMS_DOOR else None))


def _survivor_notice(world: World, kind: str) -> Any:
    """Notifications reads her contact for its own purpose: her notice about an accepted referral."""
    return contact_pb.GetCaseContactRequest(
        case_id=world.qn_case.case_id, referral_id=world.referrals[kind].referral_id, recipient_id="notifications",
        service_type=t.SERVICE_TYPE_POLICE_PROTECTION, purpose="survivor_notice", recipient_sector="police")


@dataclass(frozen=True)
class Cell:
    build: tuple[Build, Build]
    # What an out-of-scope subject answers: "not found" (as a made-up id), "empty" (a list without
    # it), or a status code the table's note documents.
    outside: str | grpc.StatusCode = "not found"
    made_up: Callable[[], Any] | None = None  # the same call about an id that does not exist
    read: bool = True  # a read must answer OK in scope; a change may meet the domain's own refusal


def _plan(case_id: str) -> Any:
    due = Timestamp()
    due.FromSeconds(int(time.time()) + 30 * 86400)
    return cw_pb.RecordCasePlanRequest(client_request_id=rid(), case_id=case_id, goals=[cw_pb.Goal(
        description="matrix goal", services=[t.SERVICE_TYPE_LEGAL_AID], responsible_kind=it.RESPONSIBLE_KIND_PERSON,
        responsible_id="qn-worker-7", due_at=due)])


def _review(case_id: str) -> Any:
    due = Timestamp()
    due.FromSeconds(int(time.time()) + 30 * 86400)
    return cw_pb.ReviewCaseRequest(client_request_id=rid(), case_id=case_id, outcome=it.REVIEW_OUTCOME_CONTINUE_PLAN,
                                   next_review_at=due)


def _rank() -> Any:
    return referral_pb.RankProvidersRequest(province_code=QN, commune_code=BAI_CHAY,
                                            service_type=t.SERVICE_TYPE_MEDICAL, sex=t.SEX_FEMALE)


MADE_UP = "0190f2a0-0000-7000-8000-000000000000"
CELLS: dict[str, Cell] = {
    # intake
    "LogCall": Cell(fixed(lambda: log_call(QN), _outside_province(lambda: log_call(HT))),
                    outside=grpc.StatusCode.PERMISSION_DENIED, read=False),
    "RegisterCase": Cell(fixed(lambda: register_request(QN, BAI_CHAY),
                               _outside_province(lambda: register_request(HT, HT_COMMUNE))),
                         outside=grpc.StatusCode.PERMISSION_DENIED, read=False),
    "ImportHistory": Cell(fixed(lambda: import_request(QN, BAI_CHAY),
                                _outside_province(lambda: import_request(HT, HT_COMMUNE))),
                          outside=grpc.StatusCode.PERMISSION_DENIED, read=False),
    "GetCase": Cell(on_case(lambda c: intake_pb.GetCaseRequest(case_id=c.case_id)),
                    made_up=lambda: intake_pb.GetCaseRequest(case_id=MADE_UP)),
    "AddNeed": Cell(on_case(lambda c: intake_pb.AddNeedRequest(
        client_request_id=rid(), case_id=c.case_id, need=intake_pb.Need(service_type=t.SERVICE_TYPE_LEGAL_AID))),
        made_up=lambda: intake_pb.AddNeedRequest(client_request_id=rid(), case_id=MADE_UP,
                                                 need=intake_pb.Need(service_type=t.SERVICE_TYPE_LEGAL_AID)),
        read=False),
    "UpdateRisk": Cell(on_case(lambda c: intake_pb.UpdateRiskRequest(
        client_request_id=rid(), case_id=c.case_id, risk_level=t.RISK_LEVEL_MEDIUM)),
        made_up=lambda: intake_pb.UpdateRiskRequest(client_request_id=rid(), case_id=MADE_UP,
                                                    risk_level=t.RISK_LEVEL_MEDIUM), read=False),
    "GiveConsent": Cell(on_case(lambda c: intake_pb.GiveConsentRequest(
        client_request_id=rid(), case_id=c.case_id, need_id=need_of(c, t.SERVICE_TYPE_MEDICAL),
        consent=intake_pb.Consent(given_by=it.CONSENT_GIVER_SURVIVOR, data_categories=["phone"]))),
        made_up=lambda: intake_pb.GiveConsentRequest(
            client_request_id=rid(), case_id=MADE_UP, need_id=MADE_UP,
            consent=intake_pb.Consent(given_by=it.CONSENT_GIVER_SURVIVOR, data_categories=["phone"])), read=False),
    "CloseCase": Cell(on_case(lambda c: intake_pb.CloseCaseRequest(
        client_request_id=rid(), case_id=c.case_id, outcome=it.CLOSE_OUTCOME_RESOLVED)),
        made_up=lambda: intake_pb.CloseCaseRequest(client_request_id=rid(), case_id=MADE_UP,
                                                   outcome=it.CLOSE_OUTCOME_RESOLVED), read=False),
    "WithdrawConsent": Cell(on_case(lambda c: intake_pb.WithdrawConsentRequest(
        client_request_id=rid(), case_id=c.case_id, need_id=need_of(c, t.SERVICE_TYPE_MEDICAL))),
        made_up=lambda: intake_pb.WithdrawConsentRequest(client_request_id=rid(), case_id=MADE_UP, need_id=MADE_UP),
        read=False),
    "OverrideConsent": Cell(on_case(lambda c: intake_pb.OverrideConsentRequest(
        client_request_id=rid(), case_id=c.case_id, need_id=need_of(c, t.SERVICE_TYPE_MEDICAL),
        legal_basis="Luật PCBLGĐ 2022", data_categories=["phone"])),
        made_up=lambda: intake_pb.OverrideConsentRequest(client_request_id=rid(), case_id=MADE_UP, need_id=MADE_UP,
                                                         legal_basis="Luật PCBLGĐ 2022", data_categories=["phone"]),
        read=False),
    "EraseCase": Cell(on_case(lambda c: intake_pb.EraseCaseRequest(
        client_request_id=rid(), case_id=c.case_id, reason=it.ERASE_REASON_ENTERED_IN_ERROR)),
        made_up=lambda: intake_pb.EraseCaseRequest(client_request_id=rid(), case_id=MADE_UP,
                                                   reason=it.ERASE_REASON_ENTERED_IN_ERROR), read=False),
    "GetCaseContact": Cell(
        (lambda w, who: _survivor_notice(w, "qn-police") if who.label == SMS_DOOR else contact_pb.GetCaseContactRequest(
            case_id=w.qn_case.case_id, referral_id=w.referrals["qn-police"].referral_id,
            recipient_id="qn-police-baichay", service_type=t.SERVICE_TYPE_POLICE_PROTECTION,
            purpose="provider_accepted_referral", recipient_sector="police"),
         lambda w, who: contact_pb.GetCaseContactRequest(
             case_id=w.qn_case.case_id, referral_id=w.referrals["qn-medical"].referral_id,
             recipient_id="qn-police-baichay", service_type=t.SERVICE_TYPE_POLICE_PROTECTION,
             purpose="provider_accepted_referral", recipient_sector="police")),
        made_up=lambda: contact_pb.GetCaseContactRequest(
            case_id=MADE_UP, referral_id=MADE_UP, recipient_id="qn-police-baichay",
            service_type=t.SERVICE_TYPE_POLICE_PROTECTION, purpose="provider_accepted_referral",
            recipient_sector="police")),
    # intake: case work
    "RecordAssessment": Cell(on_case(lambda c: cw_pb.RecordAssessmentRequest(
        client_request_id=rid(), case_id=c.case_id, risk_level=t.RISK_LEVEL_MEDIUM)),
        made_up=lambda: cw_pb.RecordAssessmentRequest(client_request_id=rid(), case_id=MADE_UP,
                                                      risk_level=t.RISK_LEVEL_MEDIUM), read=False),
    "RecordCasePlan": Cell(on_case(lambda c: _plan(c.case_id)), made_up=lambda: _plan(MADE_UP), read=False),
    "AddFollowUp": Cell(on_case(lambda c: cw_pb.AddFollowUpRequest(
        client_request_id=rid(), case_id=c.case_id, kind=it.FOLLOW_UP_KIND_PHONE_CALL, note="matrix note")),
        made_up=lambda: cw_pb.AddFollowUpRequest(client_request_id=rid(), case_id=MADE_UP,
                                                 kind=it.FOLLOW_UP_KIND_PHONE_CALL, note="matrix note"), read=False),
    "ReviewCase": Cell(on_case(lambda c: _review(c.case_id)), made_up=lambda: _review(MADE_UP), read=False),
    "ReassignCase": Cell(on_case(lambda c: cw_pb.ReassignCaseRequest(
        client_request_id=rid(), case_id=c.case_id, case_worker_id="qn-operator", reason=it.REASSIGN_REASON_LEAVE)),
        made_up=lambda: cw_pb.ReassignCaseRequest(client_request_id=rid(), case_id=MADE_UP,
                                                  case_worker_id="qn-operator", reason=it.REASSIGN_REASON_LEAVE),
        read=False),
    "CompleteStep": Cell(on_case(lambda c: cw_pb.CompleteStepRequest(
        client_request_id=rid(), case_id=c.case_id, step=it.CASE_STEP_CARRY_OUT)),
        made_up=lambda: cw_pb.CompleteStepRequest(client_request_id=rid(), case_id=MADE_UP,
                                                  step=it.CASE_STEP_CARRY_OUT), read=False),
    "GetCaseFile": Cell(on_case(lambda c: cw_pb.GetCaseFileRequest(case_id=c.case_id)),
                        made_up=lambda: cw_pb.GetCaseFileRequest(case_id=MADE_UP)),
    "ListCases": Cell(fixed(lambda: cw_pb.ListCasesRequest(province_code=QN),
                            _outside_province(lambda: cw_pb.ListCasesRequest(province_code=HT))), outside="empty"),
    # referral
    "ListReferrals": Cell(
        (lambda w, who: referral_pb.ListReferralsRequest() if who.role is Role.AGENCY
         else referral_pb.ListReferralsRequest(case_id=w.qn_case.case_id),
         lambda w, who: referral_pb.ListReferralsRequest(provider_id="qn-hospital") if who.role is Role.AGENCY
         else (None if _province_of(w, who, False) is None
               else referral_pb.ListReferralsRequest(case_id=w.ht_case.case_id))),
        outside="empty"),
    "WatchReferrals": Cell(fixed(lambda: referral_pb.WatchReferralsRequest(include_open=True))),
    "GetReferral": Cell(on_referral(lambda r: referral_pb.GetReferralRequest(referral_id=r)),
                        made_up=lambda: referral_pb.GetReferralRequest(referral_id=MADE_UP)),
    "GetSurvivorContact": Cell(on_referral(lambda r: referral_pb.GetSurvivorContactRequest(referral_id=r)),
                               made_up=lambda: referral_pb.GetSurvivorContactRequest(referral_id=MADE_UP)),
    "AcceptReferral": Cell(on_referral(lambda r: referral_pb.AcceptReferralRequest(referral_id=r, request_id=rid())),
                           made_up=lambda: referral_pb.AcceptReferralRequest(referral_id=MADE_UP, request_id=rid()),
                           read=False),
    "DeclineReferral": Cell(on_referral(lambda r: referral_pb.DeclineReferralRequest(
        referral_id=r, request_id=rid(), reason=referral_pb.DECLINE_REASON_NO_CAPACITY)),
        made_up=lambda: referral_pb.DeclineReferralRequest(referral_id=MADE_UP, request_id=rid(),
                                                           reason=referral_pb.DECLINE_REASON_NO_CAPACITY), read=False),
    "StartService": Cell(on_referral(lambda r: referral_pb.StartServiceRequest(referral_id=r, request_id=rid())),
                         made_up=lambda: referral_pb.StartServiceRequest(referral_id=MADE_UP, request_id=rid()),
                         read=False),
    "ReportProgress": Cell(on_referral(lambda r: referral_pb.ReportProgressRequest(
        referral_id=r, request_id=rid(), progress=referral_pb.PROGRESS_CONTACT_MADE)),
        made_up=lambda: referral_pb.ReportProgressRequest(referral_id=MADE_UP, request_id=rid(),
                                                          progress=referral_pb.PROGRESS_CONTACT_MADE), read=False),
    "CompleteReferral": Cell(on_referral(lambda r: referral_pb.CompleteReferralRequest(
        referral_id=r, request_id=rid(), outcome=referral_pb.OUTCOME_SERVICE_COMPLETED)),
        made_up=lambda: referral_pb.CompleteReferralRequest(referral_id=MADE_UP, request_id=rid(),
                                                            outcome=referral_pb.OUTCOME_SERVICE_COMPLETED), read=False),
    "ReportFailure": Cell(on_referral(lambda r: referral_pb.ReportFailureRequest(
        referral_id=r, request_id=rid(), reason=referral_pb.FAILURE_REASON_LOST_CONTACT)),
        made_up=lambda: referral_pb.ReportFailureRequest(referral_id=MADE_UP, request_id=rid(),
                                                         reason=referral_pb.FAILURE_REASON_LOST_CONTACT), read=False),
    "ListEscalations": Cell(fixed(lambda: referral_pb.ListEscalationsRequest(province_code=QN),
                                  _outside_province(lambda: referral_pb.ListEscalationsRequest(province_code=HT))),
                            outside="empty"),
    "AssignProvider": Cell(on_referral(lambda r: referral_pb.AssignProviderRequest(
        referral_id=r, provider_id="qn-police-halong", request_id=rid())),
        made_up=lambda: referral_pb.AssignProviderRequest(referral_id=MADE_UP, provider_id="qn-police-halong",
                                                          request_id=rid()), read=False),
    "ListProviders": Cell(fixed(lambda: referral_pb.ListProvidersRequest(province_code=QN))),
    "GetProvider": Cell(fixed(lambda: referral_pb.GetProviderRequest(provider_id="qn-hospital"))),
    "RankProviders": Cell(fixed(_rank)),
    # shelter
    "ListAvailability": Cell(fixed(lambda: shelter_pb.ListAvailabilityRequest(province_code=QN))),
    "GetShelter": Cell(fixed(lambda: shelter_pb.GetShelterRequest(shelter_id=QN_SHELTER))),
    "WatchAvailability": Cell(fixed(lambda: shelter_pb.WatchAvailabilityRequest(province_code=QN))),
    "ListReservations": Cell(fixed(lambda: shelter_pb.ListReservationsRequest(shelter_id=QN_SHELTER),
                                   lambda w, who: shelter_pb.ListReservationsRequest(shelter_id=HT_SHELTER)),
                             outside=grpc.StatusCode.PERMISSION_DENIED),
    "UpdateAvailability": Cell(fixed(lambda: shelter_pb.UpdateAvailabilityRequest(
        shelter_id=QN_SHELTER, target_group=t.TARGET_GROUP_WOMEN_WITH_CHILDREN, capacity=QN_SHELTER_BEDS),
        lambda w, who: shelter_pb.UpdateAvailabilityRequest(
            shelter_id=HT_SHELTER, target_group=t.TARGET_GROUP_WOMEN_WITH_CHILDREN, capacity=HT_SHELTER_BEDS)),
        outside=grpc.StatusCode.PERMISSION_DENIED, read=False),
    "ConfirmArrival": Cell(on_referral(lambda r: shelter_pb.ConfirmArrivalRequest(referral_id=r)),
                           made_up=lambda: shelter_pb.ConfirmArrivalRequest(referral_id=MADE_UP), read=False),
    "CheckOut": Cell(on_referral(lambda r: shelter_pb.CheckOutRequest(referral_id=r)),
                     made_up=lambda: shelter_pb.CheckOutRequest(referral_id=MADE_UP), read=False),
    # the SMS door's (only refnet service "notifications"; the phone decides whose record a text is about)
    "ReportBySms": Cell(_door(lambda: shelter_pb.ReportBySmsRequest(sender_phone=DEMO_SHELTER_PHONE),
                              lambda: shelter_pb.ReportBySmsRequest(sender_phone=UNKNOWN_PHONE)),
                        made_up=lambda: shelter_pb.ReportBySmsRequest(sender_phone=UNKNOWN_PHONE)),
    "AnswerBySms": Cell(_door(lambda: referral_pb.AnswerBySmsRequest(sender_phone=DEMO_DUTY_PHONE),
                              lambda: referral_pb.AnswerBySmsRequest(sender_phone=UNKNOWN_PHONE)),
                        made_up=lambda: referral_pb.AnswerBySmsRequest(sender_phone=UNKNOWN_PHONE)),
    "SetSmsPreference": Cell(_door(lambda: contact_pb.SetSmsPreferenceRequest(sender_phone=MATRIX_PHONE, stop=False),
                                   lambda: contact_pb.SetSmsPreferenceRequest(sender_phone=UNKNOWN_PHONE)),
                             made_up=lambda: contact_pb.SetSmsPreferenceRequest(sender_phone=UNKNOWN_PHONE),
                             read=False),
    # notifications
    "ListNotices": Cell(fixed(lambda: notifications_pb.ListNoticesRequest(), _feed_outside),
                        outside=grpc.StatusCode.PERMISSION_DENIED),
    "WatchNotices": Cell(fixed(lambda: notifications_pb.WatchNoticesRequest(), lambda w, who: _watch_outside(w, who)),
                         outside=grpc.StatusCode.PERMISSION_DENIED),
}
# Reads first, then changes, and the irreversible ones last (each in table order within its group).
ORDER = [*(m for m in CELLS if CELLS[m].read), *(m for m in CELLS if not CELLS[m].read and m not in (
    "CompleteReferral", "ReportFailure", "CheckOut", "CloseCase", "EraseCase")),
    "CompleteReferral", "ReportFailure", "CheckOut", "CloseCase", "EraseCase"]


def _watch_outside(world: World, who: Who) -> Any:
    listed = _feed_outside(world, who)
    return None if listed is None else notifications_pb.WatchNoticesRequest(recipient_id=listed.recipient_id)


def _invoke(world: World, who: Who, service_name: str, method: str, request: Any) -> tuple[grpc.StatusCode, Any]:
    call = getattr(world.stub(who, service_name), method)
    try:
        if method in STREAMS:
            stream = call(request, timeout=3)
            return grpc.StatusCode.OK, next(iter(stream))
        return grpc.StatusCode.OK, call(request, timeout=10)
    except grpc.RpcError as error:
        if method in STREAMS and error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return grpc.StatusCode.OK, None  # open and in scope, just nothing to say yet
        return error.code(), error.details()


def _listed(reply: Any) -> list[Any]:
    for name in ("referrals", "escalations", "notices", "reservations", "cases"):
        if hasattr(reply, name):
            return list(getattr(reply, name))
    raise AssertionError(f"no list in {type(reply).__name__}")


def _words(details: Any, *ids: str) -> str:
    text = str(details)
    for i in ids:
        text = text.replace(i, "ID")
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", text)


def test_every_role_every_rpc_in_and_out_of_scope(world: World) -> None:
    rules = {rule.method: (rule, name) for name, table in TABLES.items() for rule in table.rules}
    assert set(rules) == set(CELLS), "the matrix covers exactly the methods of the services' tables"
    failures: list[str] = []
    walked = 0
    for method in ORDER:
        rule, _ = rules[method]
        cell = CELLS[method]
        for who in CALLERS:
            inside, outside = (build(world, who) for build in cell.build)
            first = next((r for r in (inside, outside) if r is not None), None) or cell.made_up()  # type: ignore[misc]
            got, reply = _invoke(world, who, rule.service, method, first)
            walked += 1
            where = f"{who.label} → {rule.name}"
            if who.cert_role or not who.token:
                if got != grpc.StatusCode.UNAUTHENTICATED:
                    failures.append(f"{where}: {got} (expected UNAUTHENTICATED)")
                continue
            scope = rule.scopes.get(who.role)
            if scope is None:
                if got != grpc.StatusCode.PERMISSION_DENIED:
                    failures.append(f"{where}: {got} {reply} (role not in the table: expected PERMISSION_DENIED)")
                continue
            allowed = {grpc.StatusCode.OK} if cell.read else {grpc.StatusCode.OK, *STATE_REFUSALS}
            if inside is not None and got not in allowed:
                failures.append(f"{where} in scope: {got} {reply} (expected {sorted(c.name for c in allowed)})")
            if outside is None or inside is None:
                continue
            out_got, out_reply = _invoke(world, who, rule.service, method, outside)
            walked += 1
            if cell.outside == "empty":
                if out_got != grpc.StatusCode.OK or _listed(out_reply):
                    failures.append(f"{where} out of scope: {out_got} {out_reply} (expected an empty list)")
            elif cell.outside == "not found":
                assert cell.made_up is not None, method
                made_got, made_reply = _invoke(world, who, rule.service, method, cell.made_up())
                if (out_got, _words(out_reply)) != (grpc.StatusCode.NOT_FOUND, _words(made_reply)) \
                        or made_got != grpc.StatusCode.NOT_FOUND:
                    failures.append(f"{where} out of scope: {out_got} {out_reply!r} vs a made-up id: {made_got} "
                                    f"{made_reply!r} (expected the same NOT_FOUND)")
            elif out_got != cell.outside:
                failures.append(f"{where} out of scope: {out_got} {out_reply} (expected {cell.outside})")
    assert not failures, f"{len(failures)} of {walked} cells differ from the tables:\n" + "\n".join(failures)
    assert walked > len(CELLS) * len(CALLERS)
