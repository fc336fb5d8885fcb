"""Registers a few sample cases through the public gRPC API and prints what happened to each."""

from __future__ import annotations

import time
import uuid

import grpc

from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import casework_service_pb2 as cw_pb
from refnet.intake.v1 import casework_service_pb2_grpc as cw_grpc
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet.intake.v1 import types_pb2 as intake_types
from refnet.notifications.v1 import notifications_service_pb2 as notifications_pb
from refnet.notifications.v1 import notifications_service_pb2_grpc as notifications_grpc
from refnet_dev.network import Network

OPERATOR = "national-111-operator"  # the national line: the samples span three provinces

SAMPLES = [
    ("Quảng Ninh: domestic violence, adult woman", intake_pb.RegisterCaseRequest(
        province_code="22", commune_code="06673", case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE],
        risk_level=t.RISK_LEVEL_MEDIUM, survivor=intake_pb.Survivor(age=34, sex=t.SEX_FEMALE),
        needs=[intake_pb.Need(service_type=s, consented=c) for s, c in (
            (t.SERVICE_TYPE_POLICE_PROTECTION, True), (t.SERVICE_TYPE_MEDICAL, True),
            (t.SERVICE_TYPE_SHELTER, True), (t.SERVICE_TYPE_LEGAL_AID, False))],
        contact=intake_pb.Contact(name="(demo survivor A)", phone="0900000001"))),
    ("Hà Tĩnh: child abuse, immediate danger", intake_pb.RegisterCaseRequest(
        province_code="42", commune_code="18100", case_types=[t.CASE_TYPE_CHILD_ABUSE_OR_NEGLECT],
        risk_level=t.RISK_LEVEL_HIGH, immediate_danger=True,
        survivor=intake_pb.Survivor(is_child=True, age=12, sex=t.SEX_FEMALE),
        # A child cannot consent alone: her guardian consents for each service.
        needs=[intake_pb.Need(service_type=s, consent=intake_pb.Consent(
            given_by=intake_types.CONSENT_GIVER_GUARDIAN, data_categories=["name", "phone", "safe_contact"]))
            for s in (t.SERVICE_TYPE_POLICE_PROTECTION, t.SERVICE_TYPE_SHELTER, t.SERVICE_TYPE_PSYCHOSOCIAL)],
        contact=intake_pb.Contact(name="(demo guardian B)", phone="0900000002"))),
    ("Cần Thơ: suspected trafficking, adult woman", intake_pb.RegisterCaseRequest(
        province_code="92", commune_code="31135", case_types=[t.CASE_TYPE_TRAFFICKING],
        risk_level=t.RISK_LEVEL_MEDIUM, survivor=intake_pb.Survivor(age=22, sex=t.SEX_FEMALE),
        needs=[intake_pb.Need(service_type=s, consented=True) for s in (
            t.SERVICE_TYPE_LEGAL_AID, t.SERVICE_TYPE_PSYCHOSOCIAL, t.SERVICE_TYPE_SHELTER)],
        contact=intake_pb.Contact(name="(demo survivor C)", phone="0900000003"))),
    ("Hà Tĩnh: older woman with a disability, social protection", intake_pb.RegisterCaseRequest(
        province_code="42", commune_code="18100", case_types=[t.CASE_TYPE_OLDER_PERSON, t.CASE_TYPE_DISABILITY],
        risk_level=t.RISK_LEVEL_LOW, survivor=intake_pb.Survivor(age=74, sex=t.SEX_FEMALE),
        needs=[intake_pb.Need(service_type=s, consented=True) for s in (
            t.SERVICE_TYPE_SOCIAL_PROTECTION, t.SERVICE_TYPE_WELFARE_ACCESS, t.SERVICE_TYPE_MEDICAL)],
        contact=intake_pb.Contact(name="(demo survivor D)", phone="0900000004"))),
]


def demo(network: Network, wait_s: float = 15) -> int:
    if not all(network.healthy(s) for s in ("intake", "referral", "shelter", "notifications")):
        print("refnet is not running: start it with `make run` in another terminal first")
        return 1
    with network.channel("intake", OPERATOR, "operator") as channel:
        intake = intake_grpc.IntakeServiceStub(channel)
        cases = []
        for title, request in SAMPLES:
            request.client_request_id = f"demo-{uuid.uuid4()}"
            request.case_worker_id = OPERATOR
            case = intake.RegisterCase(request, timeout=10).case
            cases.append((title, case.case_id))
            print(f"registered  {title}: case {case.case_id}{'  EMERGENCY' if case.emergency else ''}")
        print(f"waiting up to {wait_s:.0f}s for referrals, beds and notices...")
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not all(_arranged(intake, case_id) for _, case_id in cases):
            time.sleep(0.5)
        for title, case_id in cases:
            _print_case(network, intake, title, case_id)
        _print_case_list(cw_grpc.CaseWorkServiceStub(channel))
    return 0


def _print_case_list(work: cw_grpc.CaseWorkServiceStub) -> None:
    """The national line's open cases, due first (CaseWorkService.ListCases): a child's step and its deadline."""
    listed = work.ListCases(cw_pb.ListCasesRequest(status=intake_types.CASE_STATUS_OPEN, page_size=10)).cases
    print("\nopen cases, due first (the national line's list):")
    for c in listed:
        step = intake_types.CaseStep.Name(c.current_step).removeprefix("CASE_STEP_").lower() if c.current_step else "-"
        due = c.next_due_at.ToDatetime().strftime("%Y-%m-%d %H:%M UTC") if c.HasField("next_due_at") else "-"
        print(f"  {c.case_id}  province {c.province_code}  step {step:<18} due {due}")


def _arranged(intake: intake_grpc.IntakeServiceStub, case_id: str) -> bool:
    case = intake.GetCase(intake_pb.GetCaseRequest(case_id=case_id)).case
    return all(n.referral_id for n in case.needs if n.consented)


def _print_case(network: Network, intake: intake_grpc.IntakeServiceStub, title: str, case_id: str) -> None:
    case = intake.GetCase(intake_pb.GetCaseRequest(case_id=case_id)).case
    print(f"\n{title}  (case {case_id})")
    for need in case.needs:
        service = t.ServiceType.Name(need.service_type).removeprefix("SERVICE_TYPE_").lower()
        if not need.consented:
            print(f"  {service:<18} no consent: no referral sent")
            continue
        if not need.referral_id:
            print(f"  {service:<18} not arranged yet")
            continue
        notices = _notices(network, need.provider_id, case_id)
        print(f"  {service:<18} -> {need.provider_id or '(escalated: no provider)':<22} {need.referral_status:<10} "
              f"notices to provider: {notices}")


def _notices(network: Network, provider_id: str, case_id: str) -> int:
    if not provider_id:
        return 0
    try:
        with network.channel("notifications", provider_id, "agency") as channel:
            stub = notifications_grpc.NotificationsServiceStub(channel)
            reply = stub.ListNotices(notifications_pb.ListNoticesRequest(recipient_id=provider_id, case_id=case_id))
            return len(reply.notices)
    except grpc.RpcError:
        return 0

