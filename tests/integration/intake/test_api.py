"""Intake's rules through its real gRPC API over mutual TLS, on SQLite and PostgreSQL: machines by their
certificates, people (operators, supervisors) signed in to the real Keycloak with their provinces in their
tokens, each only within those provinces; idempotency, triage, consent gates, withdrawal, overrides,
audited contact reads (and audited refusals), crypto-shredding, and no personal data on any outbox row or
log line."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import contact_service_pb2 as contact_pb
from refnet.intake.v1 import contact_service_pb2_grpc, events_pb2, intake_service_pb2_grpc
from refnet.intake.v1 import intake_service_pb2 as pb
from refnet.intake.v1 import types_pb2 as it
from refnet_platform.identity import channel_credentials

pytestmark = pytest.mark.integration

QUANG_NINH, BAI_CHAY = "22", "06673"
HA_TINH, TRAN_PHU = "42", "18100"
CAN_THO, NINH_KIEU = "92", "31135"
# Realm users (deploy/keycloak/refnet-realm.json): api.intake()'s default is qn-operator (provinces ["22"]).
SUPERVISOR = ("qn-supervisor", "supervisor")  # provinces ["22"]
HT_OPERATOR, HT_SUPERVISOR = ("ht-operator", "operator"), ("ht-supervisor", "supervisor")  # ["42"]
NATIONAL = ("national-111-operator", "operator")  # the national 111 line: ["*"]
PURPOSE = "provider_accepted_referral"
CALL = pb.CallDetails(channel=it.CALL_CHANNEL_PROVINCIAL_HOTLINE, topic=it.CALL_TOPIC_DOMESTIC_VIOLENCE,
                      duration_seconds=300)


def rid() -> str:
    return f"it-{uuid.uuid4()}"


def case_request(**overrides: Any) -> pb.RegisterCaseRequest:
    request = pb.RegisterCaseRequest(
        client_request_id=rid(), province_code=QUANG_NINH, commune_code=BAI_CHAY,
        case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], risk_level=t.RISK_LEVEL_MEDIUM,
        survivor=pb.Survivor(age=29, sex=t.SEX_FEMALE),
        needs=[pb.Need(service_type=t.SERVICE_TYPE_POLICE_PROTECTION, consented=True),
               pb.Need(service_type=t.SERVICE_TYPE_LEGAL_AID)],
        contact=pb.Contact(name="Phạm Thị Ví Dụ", phone="0987 000 111", address="Thôn 2", phone_is_safe=True,
                           safe_contact_note="gọi sau 18 giờ"),
        narrative="chồng đánh", case_worker_id="qn-worker-7",
    )
    for name, value in overrides.items():
        if isinstance(value, list):
            request.ClearField(name)
            getattr(request, name).extend(value)
        elif hasattr(value, "DESCRIPTOR"):
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, name, value)
    return request


def referral_id(case_id: str, service: int) -> str:
    return f"ref-{service}-{case_id}"


def contact_request(case_id: str, service: int = t.SERVICE_TYPE_POLICE_PROTECTION, sector: str = "police"
                    ) -> contact_pb.GetCaseContactRequest:
    """As referral asks, for the referral `accept` recorded."""
    return contact_pb.GetCaseContactRequest(case_id=case_id, referral_id=referral_id(case_id, service),
                                            recipient_id="qn-police-baichay", service_type=service,
                                            purpose=PURPOSE, recipient_sector=sector)


def notice_request(case_id: str, service: int = t.SERVICE_TYPE_POLICE_PROTECTION, sector: str = "police"
                   ) -> contact_pb.GetCaseContactRequest:
    """As notifications asks before a survivor's notice."""
    return contact_pb.GetCaseContactRequest(case_id=case_id, referral_id=referral_id(case_id, service),
                                            recipient_id="notifications", service_type=service,
                                            purpose="survivor_notice", recipient_sector=sector)


def accept(api: Any, case: Any, *services: int) -> None:
    """Intake's record of a referral accepted by qn-police-baichay for each service (police protection if
    none named), as intake-worker keeps it from referral's events (not running here)."""
    for service in services or (t.SERVICE_TYPE_POLICE_PROTECTION,):
        [need_id] = [n.need_id for n in case.needs if n.service_type == service]
        with api.engine.begin() as conn:
            conn.execute(text("INSERT INTO referrals (referral_id, case_id, need_id, provider_id, status, accepted, "
                              "updated_at) VALUES (:r, :c, :n, 'qn-police-baichay', 'accepted', :a, "
                              "CURRENT_TIMESTAMP)"),
                         dict(r=referral_id(case.case_id, service), c=case.case_id, n=need_id, a=True))


def refused(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call(request, timeout=10)
    return error.value


def payloads(api: Any, case_id: str, kind: type) -> list[Any]:
    return [e for _, _, e in api.events(f"case/{case_id}") if isinstance(e, kind)]


def test_a_case_is_registered_read_back_and_registered_once(api: Any) -> None:
    intake = api.intake()
    request = case_request()
    first = intake.RegisterCase(request, timeout=10)
    assert first.created and first.case.status == it.CASE_STATUS_OPEN
    case_id = first.case.case_id
    read = intake.GetCase(pb.GetCaseRequest(case_id=case_id), timeout=10).case
    assert read == first.case
    police, legal = read.needs
    assert police.consented and police.consent.status == it.CONSENT_STATUS_VALID
    assert police.consent.given_by == it.CONSENT_GIVER_SURVIVOR
    assert list(police.consent.data_categories) == ["name", "phone", "safe_contact"]
    assert not legal.consented and legal.consent.status == it.CONSENT_STATUS_NONE
    again = intake.RegisterCase(request, timeout=10)
    assert (again.created, again.case.case_id) == (False, case_id)
    [(topic, key, registered)] = api.events(f"case/{case_id}")
    assert (topic, key, type(registered)) == ("intake.cases.v1", QUANG_NINH, events_pb2.CaseRegistered)
    assert {n.need_id: n.consented for n in registered.needs} == {police.need_id: True, legal.need_id: False}
    assert refused(intake.GetCase, pb.GetCaseRequest(case_id=str(uuid.uuid4()))).code() == grpc.StatusCode.NOT_FOUND


def test_every_mutating_rpc_is_idempotent_on_its_client_request_id(api: Any) -> None:
    # The national line: it logs a Hà Tĩnh call and works a Quảng Ninh case.
    intake, supervisor = api.intake(*NATIONAL), api.intake(*SUPERVISOR)
    registered = intake.RegisterCase(case_request(call=CALL), timeout=10)
    case_id, legal_id = registered.case.case_id, registered.case.needs[1].need_id
    consent = pb.Consent(given_by=it.CONSENT_GIVER_SURVIVOR, data_categories=["phone"])
    calls = [
        (intake.LogCall, pb.LogCallRequest(client_request_id=rid(), province_code=HA_TINH, call=CALL,
                                           outcome=it.CALL_OUTCOME_ADVICE_GIVEN)),
        (intake.AddNeed, pb.AddNeedRequest(client_request_id=rid(), case_id=case_id,
                                           need=pb.Need(service_type=t.SERVICE_TYPE_MEDICAL))),
        (intake.UpdateRisk, pb.UpdateRiskRequest(client_request_id=rid(), case_id=case_id,
                                                 risk_level=t.RISK_LEVEL_HIGH)),
        (intake.GiveConsent, pb.GiveConsentRequest(client_request_id=rid(), case_id=case_id, need_id=legal_id,
                                                   consent=consent)),
        (intake.WithdrawConsent, pb.WithdrawConsentRequest(client_request_id=rid(), case_id=case_id,
                                                           need_id=legal_id)),
        (supervisor.OverrideConsent, pb.OverrideConsentRequest(client_request_id=rid(), case_id=case_id,
                                                               need_id=legal_id, legal_basis="Luật PCBLGĐ 2022",
                                                               data_categories=["phone"])),
        (intake.CloseCase, pb.CloseCaseRequest(client_request_id=rid(), case_id=case_id,
                                               outcome=it.CLOSE_OUTCOME_RESOLVED)),
        (supervisor.EraseCase, pb.EraseCaseRequest(client_request_id=rid(), case_id=case_id,
                                                   reason=it.ERASE_REASON_SURVIVOR_REQUEST)),
    ]
    firsts = []
    for call, request in calls:
        reply = call(request, timeout=10)
        assert reply.created, request.DESCRIPTOR.name
        firsts.append(reply)
    published = len(api.outbox_rows())
    for (call, request), first in zip(calls, firsts, strict=True):
        again = call(request, timeout=10)
        assert not again.created, request.DESCRIPTOR.name
        if request.DESCRIPTOR.name == "LogCallRequest":
            assert again.call.call_id == first.call.call_id
        for name in ("need_id", "consent_id"):
            if hasattr(first, name):
                assert getattr(again, name) == getattr(first, name)
    assert len(api.outbox_rows()) == published
    reused = refused(intake.UpdateRisk, pb.UpdateRiskRequest(client_request_id=calls[1][1].client_request_id,
                                                             case_id=registered.case.case_id,
                                                             risk_level=t.RISK_LEVEL_LOW))
    assert reused.code() == grpc.StatusCode.ALREADY_EXISTS and reused.details().startswith("client_request_id:")


def test_concurrent_repeats_create_one_case_and_one_need(api: Any) -> None:
    intake = api.intake()
    request = case_request()
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: intake.RegisterCase(request, timeout=20), range(8)))
    assert len({r.case.case_id for r in replies}) == 1 and sum(r.created for r in replies) == 1
    case_id = replies[0].case.case_id

    def add_medical(_: int) -> str:
        try:
            intake.AddNeed(pb.AddNeedRequest(client_request_id=rid(), case_id=case_id,
                                             need=pb.Need(service_type=t.SERVICE_TYPE_MEDICAL)), timeout=20)
            return "created"
        except grpc.RpcError as error:
            return error.code().name

    with ThreadPoolExecutor(8) as pool:
        outcomes = sorted(pool.map(add_medical, range(8)))
    assert outcomes == ["ALREADY_EXISTS"] * 7 + ["created"]
    assert len(payloads(api, case_id, events_pb2.NeedAdded)) == 1


@pytest.mark.parametrize(("subject_id", "role"), [
    ("someone", "agency"), ("someone", "shelter"),  # partners' own systems, by their certificates
    ("qn-police-baichay", "person"), ("qn-spc-staff", "person"),  # an agency's and a shelter's staff, signed in
    ("ops-oncall", "ops"),  # the operations team: people, every province, still no case work
])
def test_partners_and_ops_cannot_touch_cases(api: Any, subject_id: str, role: str) -> None:
    case_id = api.intake().RegisterCase(case_request(), timeout=10).case.case_id
    channel = api.person_channel(subject_id) if role == "person" else api.channel(subject_id, role)
    outsider = intake_service_pb2_grpc.IntakeServiceStub(channel)
    for call, request in ((outsider.RegisterCase, case_request()),
                          (outsider.GetCase, pb.GetCaseRequest(case_id=case_id)),
                          (outsider.LogCall, pb.LogCallRequest(client_request_id=rid(), province_code=QUANG_NINH,
                                                               call=CALL, outcome=it.CALL_OUTCOME_ADVICE_GIVEN)),
                          (outsider.UpdateRisk, pb.UpdateRiskRequest(client_request_id=rid(), case_id=case_id,
                                                                     risk_level=t.RISK_LEVEL_HIGH)),
                          (outsider.CloseCase, pb.CloseCaseRequest(client_request_id=rid(), case_id=case_id,
                                                                   outcome=it.CLOSE_OUTCOME_RESOLVED)),
                          (contact_service_pb2_grpc.CaseContactServiceStub(channel).GetCaseContact,
                           contact_request(case_id))):
        assert refused(call, request).code() == grpc.StatusCode.PERMISSION_DENIED


def test_supervisor_only_and_service_only_rpcs(api: Any) -> None:
    operator = api.intake()
    case = operator.RegisterCase(case_request(), timeout=10).case
    erase = pb.EraseCaseRequest(client_request_id=rid(), case_id=case.case_id, reason=it.ERASE_REASON_ENTERED_IN_ERROR)
    override = pb.OverrideConsentRequest(client_request_id=rid(), case_id=case.case_id, need_id=case.needs[1].need_id,
                                         legal_basis="NĐ 56/2017", data_categories=["name"])
    assert refused(operator.EraseCase, erase).code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused(operator.OverrideConsent, override).code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused(api.contacts("qn-operator", "operator").GetCaseContact,
                   contact_request(case.case_id)).code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused(api.intake("referral", "service").GetCase,
                   pb.GetCaseRequest(case_id=case.case_id)).code() == grpc.StatusCode.PERMISSION_DENIED
    # No certificate makes anyone a person: an unknown role, and (since people sign in) an operator's,
    # supervisor's or ops certificate, are refused before any handler runs; so is a front door without a token.
    for subject_id, role in (("mallory", "wizard"), ("qn-operator", "operator"), ("qn-supervisor", "supervisor"),
                             ("ops-oncall", "ops"), ("refnet-dev", "gateway")):
        with certificate_channel(api, subject_id, role) as channel:
            stranger = intake_service_pb2_grpc.IntakeServiceStub(channel)
            assert refused(stranger.GetCase, pb.GetCaseRequest(case_id=case.case_id)).code() == \
                grpc.StatusCode.UNAUTHENTICATED, role


def certificate_channel(api: Any, subject_id: str, role: str) -> grpc.Channel:
    """A channel with a client certificate of the development CA for CN `subject_id`, OU `role` (any role)."""
    cert, key = api.network.pki.client(subject_id, role)
    channel: grpc.Channel = grpc.secure_channel(api.network.address("intake"),
                                                channel_credentials(api.network.pki.ca, cert, key))
    return channel


def test_a_case_outside_the_callers_provinces_reads_exactly_as_a_missing_one(api: Any) -> None:
    qn, ht, national = api.intake(), api.intake(*HT_OPERATOR), api.intake(*NATIONAL)
    qn_case = qn.RegisterCase(case_request(), timeout=10).case
    ht_request = case_request(province_code=HA_TINH, commune_code=TRAN_PHU)
    ht_case = ht.RegisterCase(ht_request, timeout=10).case
    made_up = str(uuid.uuid4())

    # Quảng Ninh's operator asking for a Hà Tĩnh case gets what an id that never existed gets, word for word.
    outside = refused(qn.GetCase, pb.GetCaseRequest(case_id=ht_case.case_id))
    missing = refused(qn.GetCase, pb.GetCaseRequest(case_id=made_up))
    assert (outside.code(), outside.details()) == (grpc.StatusCode.NOT_FOUND, f"case {ht_case.case_id} not found")
    assert (missing.code(), missing.details()) == (grpc.StatusCode.NOT_FOUND, f"case {made_up} not found")
    assert outside.details().replace(ht_case.case_id, "<id>") == missing.details().replace(made_up, "<id>")
    assert refused(ht.GetCase, pb.GetCaseRequest(case_id=qn_case.case_id)).details() == \
        f"case {qn_case.case_id} not found"
    # Changing it, too, as a supervisor of the other province or as its operator.
    for call, request in (
            (qn.UpdateRisk, pb.UpdateRiskRequest(client_request_id=rid(), case_id=ht_case.case_id,
                                                 risk_level=t.RISK_LEVEL_LOW)),
            (qn.CloseCase, pb.CloseCaseRequest(client_request_id=rid(), case_id=ht_case.case_id,
                                               outcome=it.CLOSE_OUTCOME_RESOLVED)),
            (api.intake(*SUPERVISOR).EraseCase, pb.EraseCaseRequest(
                client_request_id=rid(), case_id=ht_case.case_id, reason=it.ERASE_REASON_SURVIVOR_REQUEST)),
            (api.intake(*HT_SUPERVISOR).EraseCase, pb.EraseCaseRequest(
                client_request_id=rid(), case_id=qn_case.case_id, reason=it.ERASE_REASON_SURVIVOR_REQUEST))):
        other = refused(call, request)
        assert (other.code(), other.details()) == (grpc.StatusCode.NOT_FOUND, f"case {request.case_id} not found")
    # Creating a case in a province not hers is refused, naming the field; her token's province decides.
    elsewhere = refused(qn.RegisterCase, case_request(province_code=HA_TINH, commune_code=TRAN_PHU))
    assert elsewhere.code() == grpc.StatusCode.PERMISSION_DENIED and elsewhere.details().startswith("province_code:")
    # A Quảng Ninh request reusing Hà Tĩnh's request id returns nothing of that case, not even its id.
    repeat = refused(qn.RegisterCase, case_request(client_request_id=ht_request.client_request_id))
    assert repeat.code() == grpc.StatusCode.ALREADY_EXISTS and ht_case.case_id not in repeat.details()

    # The national 111 line reads both, unchanged by any of the above.
    assert national.GetCase(pb.GetCaseRequest(case_id=qn_case.case_id), timeout=10).case == qn_case
    assert national.GetCase(pb.GetCaseRequest(case_id=ht_case.case_id), timeout=10).case == ht_case
    assert api.rows("SELECT * FROM audit_log WHERE case_id IN (:q, :h)", q=qn_case.case_id, h=ht_case.case_id) == []


def test_a_contact_read_by_an_unknown_service_or_for_a_made_up_referral_is_refused_and_audited(api: Any) -> None:
    case = api.intake().RegisterCase(case_request(), timeout=10).case
    accept(api, case)  # a real accepted referral is on intake's record: only the caller or the id is wrong below
    made_up = contact_request(case.case_id)
    made_up.referral_id = f"ref-{uuid.uuid4()}"
    nowhere = str(uuid.uuid4())
    missing = refused(api.contacts().GetCaseContact, contact_request(nowhere))
    assert (missing.code(), missing.details()) == (grpc.StatusCode.NOT_FOUND, f"case {nowhere} not found")

    # An OU=service certificate for a service with no contact purpose ("curious"), with a made-up and with the
    # real referral id; then referral itself with a made-up referral id: each answers as a missing case.
    curious = api.contacts("curious", "service")
    for call, request in ((curious.GetCaseContact, made_up), (curious.GetCaseContact, contact_request(case.case_id)),
                          (api.contacts().GetCaseContact, made_up)):
        refusal = refused(call, request)
        assert (refusal.code(), refusal.details()) == (grpc.StatusCode.NOT_FOUND, f"case {case.case_id} not found")

    # The audit log holds each refusal with its true reason; nothing was read.
    audit = api.rows("SELECT actor_id, actor_role, action, referral_id, recipient_id, purpose, detail FROM audit_log "
                     "WHERE case_id = :c ORDER BY audit_id", c=case.case_id)
    assert [(a["actor_id"], a["actor_role"], a["action"], a["referral_id"]) for a in audit] == [
        ("curious", "service", "contact_refused", made_up.referral_id),
        ("curious", "service", "contact_refused", referral_id(case.case_id, t.SERVICE_TYPE_POLICE_PROTECTION)),
        ("referral", "service", "contact_refused", made_up.referral_id)]
    assert all(a["recipient_id"] == "qn-police-baichay" and a["purpose"] == PURPOSE for a in audit)
    assert all(a["detail"].startswith("not found: ") for a in audit)
    assert "curious" in audit[0]["detail"] and "curious" in audit[1]["detail"]
    assert "curious" not in audit[2]["detail"] and "referral" in audit[2]["detail"]
    assert api.rows("SELECT * FROM audit_log WHERE case_id = :c", c=nowhere) == []


def test_a_child_at_serious_risk_goes_urgent_with_the_12_hour_deadline(api: Any) -> None:
    guardian = pb.Consent(given_by=it.CONSENT_GIVER_GUARDIAN, data_categories=["name", "phone"])
    reply = api.intake(*HT_OPERATOR).RegisterCase(case_request(
        province_code=HA_TINH, commune_code=TRAN_PHU, case_types=[t.CASE_TYPE_CHILD_ABUSE_OR_NEGLECT],
        survivor=pb.Survivor(is_child=True, age=11, sex=t.SEX_FEMALE), risk_level=t.RISK_LEVEL_HIGH,
        immediate_danger=True, needs=[pb.Need(service_type=t.SERVICE_TYPE_POLICE_PROTECTION, consent=guardian)]),
        timeout=10)
    case = reply.case
    deadline = case.child_protection_deadline.ToDatetime(tzinfo=UTC)
    assert deadline == case.registered_at.ToDatetime(tzinfo=UTC) + timedelta(hours=12)
    [(topic, key, event)] = api.events(f"case/{case.case_id}")
    assert (topic, key) == ("intake.cases-urgent.v1", HA_TINH)
    assert event.emergency and event.immediate_danger
    assert event.child_protection_deadline == case.child_protection_deadline
    assert event.needs[0].consented and event.needs[0].consent_id == case.needs[0].consent.consent_id


def test_calls_are_logged_apart_from_cases(api: Any) -> None:
    intake = api.intake(*NATIONAL)  # a Cần Thơ call and a Quảng Ninh case
    call = intake.LogCall(pb.LogCallRequest(client_request_id=rid(), province_code=CAN_THO, commune_code=NINH_KIEU,
                                            call=pb.CallDetails(channel=it.CALL_CHANNEL_NATIONAL_111,
                                                                topic=it.CALL_TOPIC_WRONG_NUMBER_OR_SPAM,
                                                                anonymous=True),
                                            outcome=it.CALL_OUTCOME_NO_ACTION), timeout=10).call
    [(topic, key, logged)] = api.events(f"call/{call.call_id}")
    assert (topic, key, logged.anonymous, logged.outcome) == ("intake.cases.v1", CAN_THO, True,
                                                              it.CALL_OUTCOME_NO_ACTION)
    opened = intake.RegisterCase(case_request(call=CALL), timeout=10)
    [(_, _, became)] = api.events(f"call/{opened.call_id}")
    assert (became.outcome, became.case_id) == (it.CALL_OUTCOME_CASE_OPENED, opened.case.case_id)
    assert opened.case.call_id == opened.call_id


def test_consent_gates_contact_reads_and_withdrawal_cancels(api: Any) -> None:
    intake, contacts = api.intake(), api.contacts()
    case = intake.RegisterCase(case_request(), timeout=10).case
    police, legal = case.needs
    accept(api, case, t.SERVICE_TYPE_POLICE_PROTECTION, t.SERVICE_TYPE_LEGAL_AID)

    read = contacts.GetCaseContact(contact_request(case.case_id), timeout=10)
    assert (read.name, read.phone, read.safe_contact_note, read.phone_is_safe) == (
        "Phạm Thị Ví Dụ", "0987 000 111", "gọi sau 18 giờ", True)
    assert (read.address, list(read.categories)) == ("", ["name", "phone", "safe_contact"])
    no_consent = refused(contacts.GetCaseContact, contact_request(case.case_id, t.SERVICE_TYPE_LEGAL_AID, "legal_aid"))
    assert no_consent.code() == grpc.StatusCode.PERMISSION_DENIED and "no consent" in no_consent.details()

    withdrawn = intake.WithdrawConsent(pb.WithdrawConsentRequest(client_request_id=rid(), case_id=case.case_id,
                                                                 need_id=police.need_id), timeout=10)
    assert withdrawn.case.needs[0].consent.status == it.CONSENT_STATUS_WITHDRAWN
    [event] = payloads(api, case.case_id, events_pb2.ConsentWithdrawn)
    assert (event.need_id, event.consent_id, event.service_type) == (
        police.need_id, police.consent.consent_id, t.SERVICE_TYPE_POLICE_PROTECTION)
    after = refused(contacts.GetCaseContact, contact_request(case.case_id))
    assert after.code() == grpc.StatusCode.FAILED_PRECONDITION and "withdrawn" in after.details()

    # No event ever marks the need without consent as consented.
    for _, _, payload in api.events(f"case/{case.case_id}"):
        refs = list(payload.needs) if isinstance(payload, events_pb2.CaseRegistered) else []
        assert not any(ref.consented for ref in refs if ref.need_id == legal.need_id)
        assert not (isinstance(payload, events_pb2.ConsentGiven) and payload.need_id == legal.need_id)

    audit = api.rows("SELECT action, actor_id, recipient_id, purpose, referral_id FROM audit_log "
                     "WHERE case_id = :c ORDER BY audit_id", c=case.case_id)
    assert [a["action"] for a in audit] == ["contact_read", "contact_refused", "contact_refused"]
    assert all(a["actor_id"] == "referral" and a["recipient_id"] == "qn-police-baichay" and a["purpose"] == PURPOSE
               and a["referral_id"].startswith("ref-") for a in audit)


def test_her_safe_times_are_sealed_and_read_back_only_under_safe_contact(api: Any) -> None:
    safe = [it.SafeContactTime(weekdays=[2, 4], start="21:47", end="22:13"),
            it.SafeContactTime(start="23:00", end="06:00"),
            it.SafeContactTime(weekdays=[7], start="00:00", end="24:00")]
    contact = pb.Contact(name="Phạm Thị Ví Dụ", phone="0987 000 111", phone_is_safe=True, safe_times=safe)
    phone_only = pb.Consent(given_by=it.CONSENT_GIVER_SURVIVOR, data_categories=["phone"])
    case = api.intake().RegisterCase(case_request(contact=contact, needs=[
        pb.Need(service_type=t.SERVICE_TYPE_POLICE_PROTECTION, consented=True),  # name, phone, safe_contact
        pb.Need(service_type=t.SERVICE_TYPE_LEGAL_AID, consent=phone_only)]), timeout=10).case
    accept(api, case, t.SERVICE_TYPE_POLICE_PROTECTION, t.SERVICE_TYPE_LEGAL_AID)

    # Notifications' purpose: her safe phone and her safe times, never her name.
    read = api.contacts("notifications").GetCaseContact(notice_request(case.case_id), timeout=10)
    assert list(read.safe_times) == safe and list(read.categories) == ["phone", "safe_times"] and read.name == ""
    without = api.contacts("notifications").GetCaseContact(
        notice_request(case.case_id, t.SERVICE_TYPE_LEGAL_AID, "legal_aid"), timeout=10)
    assert (without.phone, list(without.safe_times), list(without.categories)) == ("0987 000 111", [], ["phone"])
    audit = api.rows("SELECT action, detail FROM audit_log WHERE case_id = :c ORDER BY audit_id", c=case.case_id)
    assert audit == [{"action": "contact_read", "detail": "phone,safe_times"},
                     {"action": "contact_read", "detail": "phone"}]

    # Sealed with the rest of her contact: not in the row, the database file or its write-ahead log.
    [sealed] = api.rows("SELECT ciphertext FROM case_personal_data WHERE case_id = :c", c=case.case_id)
    assert b"21:47" not in bytes(sealed["ciphertext"])
    if api.engine.url.get_backend_name() == "sqlite":
        # The audit rows name the category read ("phone,safe_times"), never its content: her record's key
        # and her times, as they would appear in plain JSON, must not.
        for path in api.network.data_dir.glob("intake.db*"):
            data = path.read_bytes()
            assert b'"safe_times"' not in data and b'"21:47"' not in data and b'"22:13"' not in data, path.name
    for _, _, event in api.events(f"case/{case.case_id}"):
        assert b"21:47" not in event.SerializeToString()


def test_a_consent_given_later_covers_only_its_sectors(api: Any) -> None:
    intake, contacts = api.intake(), api.contacts()
    case = intake.RegisterCase(case_request(), timeout=10).case
    expires = Timestamp()
    expires.GetCurrentTime()
    expires.seconds += 3600
    given = intake.GiveConsent(pb.GiveConsentRequest(
        client_request_id=rid(), case_id=case.case_id, need_id=case.needs[1].need_id,
        consent=pb.Consent(given_by=it.CONSENT_GIVER_SURVIVOR, data_categories=["name", "address"],
                           recipient_sectors=["legal_aid"], expires_at=expires)), timeout=10)
    [event] = payloads(api, case.case_id, events_pb2.ConsentGiven)
    assert (event.consent_id, list(event.recipient_sectors), event.expires_at.seconds) == (
        given.consent_id, ["legal_aid"], expires.seconds)
    accept(api, case, t.SERVICE_TYPE_LEGAL_AID)
    read = contacts.GetCaseContact(contact_request(case.case_id, t.SERVICE_TYPE_LEGAL_AID, "legal_aid"), timeout=10)
    assert (read.name, read.address, read.phone, list(read.categories)) == (
        "Phạm Thị Ví Dụ", "Thôn 2", "", ["name", "address"])
    other = refused(contacts.GetCaseContact, contact_request(case.case_id, t.SERVICE_TYPE_LEGAL_AID, "womens_union"))
    assert other.code() == grpc.StatusCode.PERMISSION_DENIED


def test_an_override_needs_a_supervisor_and_a_legal_basis_and_is_audited(api: Any) -> None:
    case = api.intake().RegisterCase(case_request(needs=[pb.Need(service_type=t.SERVICE_TYPE_SHELTER)]),
                                     timeout=10).case
    supervisor = api.intake(*SUPERVISOR)
    request = pb.OverrideConsentRequest(client_request_id=rid(), case_id=case.case_id,
                                        need_id=case.needs[0].need_id, data_categories=["name", "phone"],
                                        recipient_sectors=["shelter"])
    no_basis = refused(supervisor.OverrideConsent, request)
    assert no_basis.code() == grpc.StatusCode.INVALID_ARGUMENT and \
        no_basis.details().startswith("legal_basis_code:")
    request.legal_basis_code = it.LEGAL_BASIS_DOMESTIC_VIOLENCE_LAW_2022
    request.legal_basis_note = "Điều 23"
    reply = supervisor.OverrideConsent(request, timeout=10)
    assert reply.case.needs[0].consent.override and reply.case.needs[0].consented
    record = reply.case.needs[0].consent
    assert record.legal_basis_code == it.LEGAL_BASIS_DOMESTIC_VIOLENCE_LAW_2022 and record.has_legal_basis_note
    assert record.legal_basis == "domestic_violence_law_2022"  # the deprecated field, for older readers
    [event] = payloads(api, case.case_id, events_pb2.ConsentGiven)
    assert event.override and event.consent_id == reply.consent_id
    [audit] = api.rows("SELECT * FROM audit_log WHERE case_id = :c", c=case.case_id)
    assert (audit["action"], audit["actor_id"], audit["actor_role"], audit["detail"]) == (
        "consent_override", "qn-supervisor", "supervisor", "domestic_violence_law_2022")
    [note] = api.rows("SELECT * FROM consent_notes WHERE case_id = :c", c=case.case_id)
    assert note["pending"] is None and "Điều 23".encode() not in bytes(note["sealed"])
    accept(api, case, t.SERVICE_TYPE_SHELTER)
    read = api.contacts().GetCaseContact(contact_request(case.case_id, t.SERVICE_TYPE_SHELTER, "shelter"), timeout=10)
    assert list(read.categories) == ["name", "phone"]


def test_an_erased_case_is_unreadable_for_good(api: Any) -> None:
    case = api.intake().RegisterCase(case_request(), timeout=10).case
    accept(api, case)
    reply = api.intake(*SUPERVISOR).EraseCase(pb.EraseCaseRequest(
        client_request_id=rid(), case_id=case.case_id, reason=it.ERASE_REASON_SURVIVOR_REQUEST), timeout=10)
    assert reply.case.status == it.CASE_STATUS_ERASED
    [event] = payloads(api, case.case_id, events_pb2.CaseErased)
    assert (event.case_id, event.province_code) == (case.case_id, QUANG_NINH)
    assert api.rows("SELECT * FROM case_keys WHERE case_id = :c", c=case.case_id) == []
    assert api.rows("SELECT * FROM case_personal_data WHERE case_id = :c", c=case.case_id) == []
    gone = refused(api.contacts().GetCaseContact, contact_request(case.case_id))
    assert gone.code() == grpc.StatusCode.FAILED_PRECONDITION and "erased" in gone.details()
    assert api.intake().GetCase(pb.GetCaseRequest(case_id=case.case_id), timeout=10).case.status == \
        it.CASE_STATUS_ERASED
    actions = [a["action"] for a in api.rows("SELECT action FROM audit_log WHERE case_id = :c ORDER BY audit_id",
                                             c=case.case_id)]
    assert actions == ["erase_case", "contact_refused"]


def test_the_audit_log_refuses_updates_and_deletes(api: Any) -> None:
    case = api.intake().RegisterCase(case_request(), timeout=10).case
    accept(api, case)
    api.contacts().GetCaseContact(contact_request(case.case_id), timeout=10)
    for statement in ("UPDATE audit_log SET purpose = 'tampered'", "DELETE FROM audit_log"):
        with pytest.raises(DatabaseError, match="append-only"), api.engine.begin() as conn:
            conn.execute(text(statement))
    assert api.rows("SELECT purpose FROM audit_log WHERE case_id = :c", c=case.case_id) == [{"purpose": PURPOSE}]


def test_personal_data_never_reaches_an_event_or_a_log_line(api: Any) -> None:
    """Last in the module: by now the api has handled every kind of request, refusals included."""
    name, phone = f"Đỗ Thị Canary {uuid.uuid4().hex[:6]}", f"09{uuid.uuid4().int % 10**8:08d}"
    intake = api.intake()
    request = case_request(contact=pb.Contact(name=name, phone=phone, address=f"nhà của {name}",
                                              safe_contact_note=f"gọi {phone}"),
                           narrative=f"{name} kể lại, số {phone}", immediate_danger=True, call=CALL)
    case = intake.RegisterCase(request, timeout=10).case
    accept(api, case)
    api.contacts().GetCaseContact(contact_request(case.case_id), timeout=10)
    refused(api.contacts().GetCaseContact, contact_request(case.case_id, t.SERVICE_TYPE_LEGAL_AID, "legal_aid"))
    bad_phone = case_request(contact=pb.Contact(name=name, phone=f"{phone} ext {name}"))
    assert refused(intake.RegisterCase, bad_phone).code() == grpc.StatusCode.INVALID_ARGUMENT
    api.intake(*SUPERVISOR).EraseCase(pb.EraseCaseRequest(client_request_id=rid(), case_id=case.case_id,
                                                          reason=it.ERASE_REASON_RETENTION_EXPIRED), timeout=10)

    secrets = [name.encode(), phone.encode()]
    rows = api.outbox_rows()
    assert len(payloads(api, case.case_id, events_pb2.CaseRegistered)) == 1
    for row in rows:
        blob = b"".join([row["topic"].encode(), row["key"].encode(), bytes(row["value"]), row["event_type"].encode()])
        assert not any(secret in blob for secret in secrets), f"personal data in an outbox row ({row['event_type']})"
    lines = api.log_lines()  # every line parses as JSON
    assert any(line.get("case_id") == case.case_id for line in lines)
    for line in lines:
        text_ = str(line)
        assert name not in text_ and phone not in text_, f"personal data in a log line: {line.get('message')}"
