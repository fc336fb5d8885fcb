"""Bad input over the real API, on SQLite and PostgreSQL: every invalid field is named, oversized and
malformed requests never reach the database, and a failure mid-handler leaves nothing behind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from sqlalchemy import text

from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import intake_service_pb2 as pb
from refnet.intake.v1 import types_pb2 as it
from refnet_platform.grpc_server import MAX_MESSAGE_BYTES

pytestmark = pytest.mark.integration

REGISTER = "/refnet.intake.v1.IntakeService/RegisterCase"
# Realm users: the requests below are about Cần Thơ (92), so its case worker and supervisor make them.
OPERATOR, SUPERVISOR = ("ct-worker-5", "operator"), ("ct-supervisor", "supervisor")


def case_request(**fields: Any) -> pb.RegisterCaseRequest:
    request = pb.RegisterCaseRequest(
        client_request_id=f"bad-{uuid.uuid4()}", province_code="92", commune_code="31135",
        case_types=[t.CASE_TYPE_TRAFFICKING], risk_level=t.RISK_LEVEL_MEDIUM,
        survivor=pb.Survivor(age=22, sex=t.SEX_FEMALE),
        needs=[pb.Need(service_type=t.SERVICE_TYPE_LEGAL_AID, consented=True)],
        contact=pb.Contact(name="Lê Thị Mẫu", phone="0290 000 000"),
    )
    request.MergeFrom(pb.RegisterCaseRequest(**fields))
    return request


def field_of(error: grpc.RpcError) -> str:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    return str(error.details()).split(":", 1)[0]


def refused(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call(request, timeout=10)
    return error.value


def clear(name: str) -> Any:
    return lambda request: request.ClearField(name)


def merge(**fields: Any) -> Any:
    return lambda request: request.MergeFrom(pb.RegisterCaseRequest(**fields))


def case_types(*numbers: int) -> Any:
    return lambda request: (request.ClearField("case_types"), request.case_types.extend(numbers))


@pytest.mark.parametrize(("change", "field"), [
    (merge(province_code="99"), "province_code"),
    (clear("province_code"), "province_code"),
    (merge(commune_code="18100"), "commune_code"),  # a Hà Tĩnh ward given for Cần Thơ
    (merge(commune_code="12345678"), "commune_code"),
    (merge(district_code="916"), "district_code"),  # Ninh Kiều district: no districts after 1 July 2025
    (merge(reported_in=pb.Place(province_code="22", commune_code="31135")), "reported_in.commune_code"),
    (merge(reported_in=pb.Place(commune_code="06673")), "reported_in.province_code"),
    (clear("client_request_id"), "client_request_id"),
    (case_types(), "case_types"),
    (case_types(0), "case_types[0]"),
    (case_types(t.CASE_TYPE_TRAFFICKING, 42), "case_types[1]"),
    (clear("risk_level"), "risk_level"),
    (merge(survivor=pb.Survivor(age=150)), "survivor.age"),
    (merge(survivor=pb.Survivor(age=12)), "survivor.is_child"),
    (merge(survivor=pb.Survivor(age_band="adult")), "survivor.age_band"),
    (merge(needs=[pb.Need(consented=True)]), "needs[1].service_type"),
    (merge(needs=[pb.Need(service_type=t.SERVICE_TYPE_SHELTER, consent=pb.Consent(given_by=1))]),
     "needs[1].consent.data_categories"),
    (merge(needs=[pb.Need(service_type=t.SERVICE_TYPE_SHELTER, consent=pb.Consent(data_categories=["name"]))]),
     "needs[1].consent.given_by"),
    (merge(contact=pb.Contact(phone="call me maybe")), "contact.phone"),
    (merge(contact=pb.Contact(safe_times=[it.SafeContactTime(start="08:00", end="09:00"),
                                          it.SafeContactTime(start="8h", end="09:00")])),
     "contact.safe_times[1].start"),
    (merge(contact=pb.Contact(safe_times=[it.SafeContactTime(start="08:00", end="24:01")])),
     "contact.safe_times[0].end"),
    (merge(contact=pb.Contact(safe_times=[it.SafeContactTime(start="21:00", end="21:00")])),
     "contact.safe_times[0].end"),
    (merge(contact=pb.Contact(safe_times=[it.SafeContactTime(weekdays=[1, 0], start="08:00", end="09:00")])),
     "contact.safe_times[0].weekdays[1]"),
    (merge(contact=pb.Contact(safe_times=[it.SafeContactTime(weekdays=[-2**31], start="08:00", end="09:00")])),
     "contact.safe_times[0].weekdays[0]"),
    (merge(call=pb.CallDetails(topic=it.CALL_TOPIC_ADVICE)), "call.channel"),
    (merge(recorded_at={"seconds": 10**13}), "recorded_at"),
    # The last hours of the Timestamp range: UTC+7 would overflow the calendar (the fuzz test found it).
    (merge(recorded_at={"seconds": 253402300799}), "recorded_at"),
    (merge(recorded_at={"seconds": 253402272000}), "recorded_at"),
])
def test_every_invalid_registration_field_is_named(api: Any, change: Any, field: str) -> None:
    request = case_request()
    change(request)
    before = api.total_rows()
    assert field_of(refused(api.intake(*OPERATOR).RegisterCase, request)) == field
    assert api.total_rows() == before


def test_old_province_codes_map_to_their_successors(api: Any) -> None:
    request = case_request(province_code="64")
    request.ClearField("commune_code")
    # The national 111 line (every province): the case lands in the successor province, 52.
    reply = api.intake("national-111-operator", "operator").RegisterCase(request, timeout=10)
    assert reply.case.province_code == "52"  # old Gia Lai and Bình Định are Gia Lai (52) since 1 July 2025


def test_other_rpcs_name_their_fields_too(api: Any) -> None:
    intake = api.intake(*OPERATOR)
    case = intake.RegisterCase(case_request(), timeout=10).case

    def rid() -> str:
        return f"bad-{uuid.uuid4()}"

    cases = [
        (intake.LogCall, pb.LogCallRequest(client_request_id=rid(), province_code="92",
                                           call=pb.CallDetails(channel=it.CALL_CHANNEL_WALK_IN)), "call.topic"),
        (intake.LogCall, pb.LogCallRequest(client_request_id=rid(), province_code="92",
                                           call=pb.CallDetails(channel=it.CALL_CHANNEL_WALK_IN,
                                                               topic=it.CALL_TOPIC_ADVICE)), "outcome"),
        (intake.LogCall, pb.LogCallRequest(client_request_id=rid(), province_code="92",
                                           call=pb.CallDetails(channel=it.CALL_CHANNEL_WALK_IN,
                                                               topic=it.CALL_TOPIC_ADVICE, duration_seconds=-5),
                                           outcome=it.CALL_OUTCOME_ADVICE_GIVEN), "call.duration_seconds"),
        (intake.AddNeed, pb.AddNeedRequest(client_request_id=rid(), case_id=case.case_id, need=pb.Need()),
         "need.service_type"),
        (intake.AddNeed, pb.AddNeedRequest(client_request_id=rid(), need=pb.Need(service_type=1)), "case_id"),
        (intake.UpdateRisk, pb.UpdateRiskRequest(client_request_id=rid(), case_id=case.case_id), "risk_level"),
        (intake.GiveConsent, pb.GiveConsentRequest(client_request_id=rid(), case_id=case.case_id,
                                                   need_id=case.needs[0].need_id), "consent"),
        (intake.GiveConsent, pb.GiveConsentRequest(client_request_id=rid(), case_id=case.case_id,
                                                   need_id=case.needs[0].need_id,
                                                   consent=pb.Consent(given_by=it.CONSENT_GIVER_SURVIVOR,
                                                                      data_categories=["name"],
                                                                      expires_at={"seconds": 1})),
         "consent.expires_at"),
        (intake.WithdrawConsent, pb.WithdrawConsentRequest(client_request_id=rid(), case_id=case.case_id),
         "need_id"),
        (intake.CloseCase, pb.CloseCaseRequest(client_request_id=rid(), case_id=case.case_id), "outcome"),
        (api.intake(*SUPERVISOR).EraseCase,
         pb.EraseCaseRequest(client_request_id=rid(), case_id=case.case_id), "reason"),
        (api.contacts().GetCaseContact, pb_contact(case.case_id, purpose=""), "purpose"),
        (api.contacts().GetCaseContact, pb_contact(case.case_id, recipient_sector="army"), "recipient_sector"),
    ]
    before = api.total_rows()
    for call, request, field in cases:
        assert field_of(refused(call, request)) == field, request
    assert api.total_rows() == before


def pb_contact(case_id: str, **fields: Any) -> Any:
    from refnet.intake.v1 import contact_service_pb2

    request = contact_service_pb2.GetCaseContactRequest(
        case_id=case_id, referral_id="ref-1", recipient_id="ct-legal-aid", service_type=t.SERVICE_TYPE_LEGAL_AID,
        purpose="provider_accepted_referral", recipient_sector="legal_aid")
    for name, value in fields.items():
        setattr(request, name, value)
    return request


def test_an_oversized_request_is_refused_before_the_database(api: Any) -> None:
    before = api.total_rows()
    huge = case_request(narrative="x" * (MAX_MESSAGE_BYTES + 1))
    assert refused(api.intake(*OPERATOR).RegisterCase, huge).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert api.total_rows() == before
    # Just under the gRPC limit but over the narrative's own: named, and still nothing written.
    long = case_request(narrative="x" * 20_001)
    assert field_of(refused(api.intake(*OPERATOR).RegisterCase, long)) == "narrative"
    assert api.total_rows() == before


@pytest.mark.parametrize("payload", [
    b"\xff\xff\xff\xff",  # not a protobuf message
    b"\x12\x02\xc3\x28",  # province_code that is not UTF-8
])
def test_a_malformed_request_is_refused_before_the_database(api: Any, payload: bytes) -> None:
    raw = api.channel(*OPERATOR).unary_unary(REGISTER)  # bytes in, bytes out, with her token
    before = api.total_rows()
    with pytest.raises(grpc.RpcError) as error:
        raw(payload, timeout=10)
    # Refused by the platform's interceptor before the handler runs, naming the message type.
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == "request: not a valid refnet.intake.v1.RegisterCaseRequest message"
    assert api.total_rows() == before


@pytest.fixture
def outbox_fails(api: Any) -> Iterator[None]:
    """Makes the last insert of every write (its outbox row) fail inside the database."""
    postgres = api.engine.dialect.name == "postgresql"
    with api.engine.begin() as conn:
        if postgres:
            conn.execute(text("CREATE FUNCTION fail_outbox() RETURNS trigger LANGUAGE plpgsql AS $$ "
                              "BEGIN RAISE EXCEPTION 'injected failure'; END $$"))
            conn.execute(text("CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox "
                              "FOR EACH ROW EXECUTE FUNCTION fail_outbox()"))
        else:
            conn.execute(text("CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox "
                              "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"))
    try:
        yield
    finally:
        with api.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER fail_outbox" + (" ON outbox" if postgres else "")))
            if postgres:
                conn.execute(text("DROP FUNCTION fail_outbox()"))


def test_a_failure_mid_handler_leaves_nothing_half_written(api: Any, outbox_fails: None) -> None:
    request = case_request(call=pb.CallDetails(channel=it.CALL_CHANNEL_NATIONAL_111,
                                               topic=it.CALL_TOPIC_TRAFFICKING))
    before = api.total_rows()
    failed = refused(api.intake(*OPERATOR).RegisterCase, request)
    assert failed.code() == grpc.StatusCode.INTERNAL and "trace" in failed.details()
    assert "injected" not in failed.details()  # the caller gets no internals
    assert api.total_rows() == before
    assert api.rows("SELECT * FROM requests WHERE request_id = :r",
                    r=request.client_request_id) == []
