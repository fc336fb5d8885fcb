"""Case work after intake on real Kafka, the real processes and a real database (PostgreSQL), people
signed in to the real Keycloak:

- a Hà Tĩnh case for an older woman with a disability is registered, assessed, planned with social-protection and
  health services, routed to the providers that give them, followed up, reviewed and closed, every step an event;
- a child at serious risk gets the emergency-measures step, and its missed deadline is escalated (the case worker
  told, the supervisor alerted) by an intake-worker started only after the deadline passed;
- qn-supervisor's case list holds only Quảng Ninh's cases, due first;
- the follow-up note's text is on no topic, in no log, span or metric.

The emergency-measures window is 12 hours by default (tests/unit/intake/test_casework.py); here it is configured
short (INTAKE_STEP_EMERGENCY_MEASURES_S) so the deadline passes during the test."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import casework_service_pb2 as cw
from refnet.intake.v1 import casework_service_pb2_grpc as cw_grpc
from refnet.intake.v1 import events_pb2
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet.intake.v1 import types_pb2 as it
from refnet.notifications.v1 import notifications_service_pb2 as notifications_pb
from refnet.notifications.v1 import notifications_service_pb2_grpc as notifications_grpc
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet.referral.v1 import referral_service_pb2_grpc as referral_grpc
from refnet_dev.kafka import KafkaBroker, read_records
from refnet_dev.keycloak import Keycloak
from refnet_dev.network import Network
from refnet_dev.otlp import SpanCollector
from refnet_dev.postgres import PostgresCluster
from refnet_dev.util import eventually
from refnet_platform.envelope import TypeRegistry, decode
from refnet_platform.topics import TOPICS

pytestmark = pytest.mark.e2e

HA_TINH, HT_COMMUNE = "42", "18100"
QUANG_NINH, BAI_CHAY = "22", "06673"
EMERGENCY_WINDOW_S = 6
INTAKE_EVENTS = TypeRegistry([events_pb2])
# The Hà Tĩnh case's plan, and the provider each service goes to (demo/directory.json).
PLANNED = {t.SERVICE_TYPE_SOCIAL_PROTECTION: "ht-spc", t.SERVICE_TYPE_WELFARE_ACCESS: "ht-welfare",
           t.SERVICE_TYPE_MEDICAL: "ht-hospital", t.SERVICE_TYPE_SHELTER: "ht-shelter-trusted"}


@pytest.fixture
def spans() -> Iterator[SpanCollector]:
    collector = SpanCollector().start()
    try:
        yield collector
    finally:
        collector.stop()


@pytest.fixture
def network(kafka_broker: KafkaBroker, keycloak: Keycloak, spans: SpanCollector, postgres_cluster: PostgresCluster,
            tmp_path: Path) -> Iterator[Network]:
    # PostgreSQL: case work's SQL on SQLite is proven by tests/unit/intake/test_casework.py and the web's case work
    # (tests/e2e/test_web_casework.py), a note sealed at rest in a SQLite file by tests/e2e/test_erasure.py.
    database_url = postgres_cluster.create_database(f"e2e_{uuid.uuid4().hex[:12]}")
    net = Network(kafka_broker.bootstrap, tmp_path / "var", database_url=database_url, otlp_endpoint=spans.endpoint,
                  keycloak=keycloak, extra_env={"INTAKE_STEP_EMERGENCY_MEASURES_S": str(EMERGENCY_WINDOW_S),
                                                "INTAKE_STEP_CHECK_INTERVAL_S": "0.5"})
    try:
        net.start()
        yield net
    finally:
        net.stop()


def rid() -> str:
    return f"e2e-{uuid.uuid4()}"


def at(seconds_from_now: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromSeconds(int(time.time() + seconds_from_now))
    return stamp


def test_case_work_from_assessment_to_closure_with_steps_escalation_and_lists(
        network: Network, spans: SpanCollector, kafka_broker: KafkaBroker) -> None:
    canary = f"Canary ghi chú {uuid.uuid4().hex}"  # what a case worker writes: personal data
    with network.person_channel("intake", "ht-worker-3") as ht_ch, \
            network.person_channel("intake", "qn-worker-7") as qn_ch, \
            network.person_channel("intake", "qn-supervisor") as qn_sup_ch, \
            network.person_channel("referral", "ht-operator") as ht_referral_ch, \
            network.person_channel("notifications", "qn-worker-7") as worker_notices_ch, \
            network.person_channel("notifications", "qn-supervisor") as supervisor_notices_ch:
        ht_intake, ht_work = intake_grpc.IntakeServiceStub(ht_ch), cw_grpc.CaseWorkServiceStub(ht_ch)

        # --- Hà Tĩnh: an older woman with a disability, from registration to closure --------------------------
        case = ht_intake.RegisterCase(intake_pb.RegisterCaseRequest(
            client_request_id=rid(), province_code=HA_TINH, commune_code=HT_COMMUNE,
            case_types=[t.CASE_TYPE_OLDER_PERSON, t.CASE_TYPE_DISABILITY], risk_level=t.RISK_LEVEL_MEDIUM,
            survivor=intake_pb.Survivor(is_child=False, age=72, sex=t.SEX_FEMALE),
            contact=intake_pb.Contact(name=f"Bà {canary}", phone="0912000111", phone_is_safe=True),
            case_worker_id="ht-worker-3"), timeout=10).case
        case_id = case.case_id
        assessed = ht_work.RecordAssessment(cw.RecordAssessmentRequest(
            client_request_id=rid(), case_id=case_id, risk_level=t.RISK_LEVEL_MEDIUM,
            needs=[t.SERVICE_TYPE_SOCIAL_PROTECTION, t.SERVICE_TYPE_MEDICAL],
            difficulties=[cw.FunctionalDifficulty(domain=cw.FUNCTIONAL_DOMAIN_WALKING, difficulty=cw.DIFFICULTY_A_LOT),
                          cw.FunctionalDifficulty(domain=cw.FUNCTIONAL_DOMAIN_SEEING, difficulty=cw.DIFFICULTY_SOME)],
            accessibility_needs=["ground_floor_bed"], summary=canary), timeout=10)
        assert assessed.created
        planned = ht_work.RecordCasePlan(cw.RecordCasePlanRequest(client_request_id=rid(), case_id=case_id, goals=[
            cw.Goal(description=f"Trợ cấp xã hội hằng tháng — {canary}",
                    services=[t.SERVICE_TYPE_SOCIAL_PROTECTION, t.SERVICE_TYPE_WELFARE_ACCESS],
                    responsible_kind=it.RESPONSIBLE_KIND_AGENCY, responsible_id="ht-spc", due_at=at(30 * 86400)),
            cw.Goal(description="Chăm sóc tạm thời khi con đi vắng", services=[t.SERVICE_TYPE_SHELTER],
                    responsible_kind=it.RESPONSIBLE_KIND_PERSON, responsible_id="ht-worker-3", due_at=at(14 * 86400)),
            cw.Goal(description="Khám sức khỏe, phục hồi chức năng", services=[t.SERVICE_TYPE_MEDICAL],
                    responsible_kind=it.RESPONSIBLE_KIND_AGENCY, responsible_id="ht-hospital", due_at=at(7 * 86400)),
        ]), timeout=10)
        needs = {n.service_type: n.need_id for n in planned.case.needs}
        assert set(needs) == set(PLANNED)
        # The earliest goal is what is due next on her case.
        assert abs(planned.case.next_due_at.seconds - at(7 * 86400).seconds) < 60
        for need_id in needs.values():
            ht_intake.GiveConsent(intake_pb.GiveConsentRequest(
                client_request_id=rid(), case_id=case_id, need_id=need_id,
                consent=intake_pb.Consent(given_by=it.CONSENT_GIVER_SURVIVOR, data_categories=["phone"])), timeout=10)
        referrals = referral_grpc.ReferralServiceStub(ht_referral_ch)

        def routed() -> dict[int, str] | None:
            found = referrals.ListReferrals(referral_pb.ListReferralsRequest(case_id=case_id), timeout=10).referrals
            by_service = {r.service_type: r.provider_id for r in found if r.provider_id}
            return by_service if len(by_service) == len(PLANNED) else None

        # Each to the Hà Tĩnh provider of the service; the shelter one offers what her assessment says she needs.
        assert eventually(routed, "every planned service routed", timeout=60) == PLANNED
        ht_work.AddFollowUp(cw.AddFollowUpRequest(client_request_id=rid(), case_id=case_id,
                                                  kind=it.FOLLOW_UP_KIND_HOME_VISIT, note=canary), timeout=10)
        ht_work.ReviewCase(cw.ReviewCaseRequest(client_request_id=rid(), case_id=case_id,
                                                outcome=it.REVIEW_OUTCOME_READY_TO_CLOSE, note=canary), timeout=10)
        closed = ht_intake.CloseCase(intake_pb.CloseCaseRequest(
            client_request_id=rid(), case_id=case_id, outcome=it.CLOSE_OUTCOME_RESOLVED,
            reason=it.CLOSE_REASON_GOALS_MET), timeout=10).case
        assert (closed.status, closed.close_reason) == (it.CASE_STATUS_CLOSED, it.CLOSE_REASON_GOALS_MET)
        case_file = ht_work.GetCaseFile(cw.GetCaseFileRequest(case_id=case_id), timeout=10)
        assert case_file.follow_ups[0].note == canary
        assert case_file.assessments[0].accessibility_needs == ["ground_floor_bed"]

        # --- a child at serious risk: the emergency-measures step, missed while intake-worker is down ----------
        network.stop_process("intake-worker")
        qn_intake, qn_work = intake_grpc.IntakeServiceStub(qn_ch), cw_grpc.CaseWorkServiceStub(qn_ch)
        child = qn_intake.RegisterCase(intake_pb.RegisterCaseRequest(
            client_request_id=rid(), province_code=QUANG_NINH, commune_code=BAI_CHAY,
            case_types=[t.CASE_TYPE_CHILD_ABUSE_OR_NEGLECT], risk_level=t.RISK_LEVEL_HIGH, immediate_danger=True,
            survivor=intake_pb.Survivor(is_child=True, age=8, sex=t.SEX_MALE), case_worker_id="qn-worker-7"),
            timeout=10).case
        assert child.current_step == it.CASE_STEP_EMERGENCY_MEASURES
        steps = {s.step: s for s in qn_work.GetCaseFile(cw.GetCaseFileRequest(case_id=child.case_id)).steps}
        emergency = steps[it.CASE_STEP_EMERGENCY_MEASURES]
        assert emergency.status == it.STEP_STATUS_OPEN
        assert emergency.due_at.ToDatetime() - child.registered_at.ToDatetime() == timedelta(
            seconds=EMERGENCY_WINDOW_S)
        assert steps[it.CASE_STEP_RECEIVE_AND_ASSESS].status == it.STEP_STATUS_OPEN
        qn_work.AddFollowUp(cw.AddFollowUpRequest(client_request_id=rid(), case_id=child.case_id,
                                                  kind=it.FOLLOW_UP_KIND_PHONE_CALL, note=canary), timeout=10)
        time.sleep(EMERGENCY_WINDOW_S + 1)  # the deadline passes with no worker running
        assert not _events(kafka_broker.bootstrap, child.case_id, events_pb2.CaseStepOverdue)
        network.start_process("intake-worker")

        overdue = eventually(lambda: _events(kafka_broker.bootstrap, child.case_id, events_pb2.CaseStepOverdue),
                             "the missed step escalated by the restarted intake-worker", timeout=60)
        assert len(overdue) == 1 and overdue[0].step == it.CASE_STEP_EMERGENCY_MEASURES
        assert overdue[0].case_worker_id == "qn-worker-7"

        def notices(channel: Any, recipient: str) -> list[str]:
            reply = notifications_grpc.NotificationsServiceStub(channel).ListNotices(
                notifications_pb.ListNoticesRequest(recipient_id=recipient, case_id=child.case_id), timeout=10)
            return [n.kind for n in reply.notices]

        assert "case_step_overdue" in eventually(lambda: notices(worker_notices_ch, "qn-worker-7"),
                                                 "the case worker told", timeout=60)
        assert "case_step_escalated" in eventually(lambda: notices(supervisor_notices_ch, QUANG_NINH),
                                                   "the supervisor alerted", timeout=60)
        escalated = {s.step: s for s in qn_work.GetCaseFile(cw.GetCaseFileRequest(case_id=child.case_id)).steps}
        assert escalated[it.CASE_STEP_EMERGENCY_MEASURES].HasField("escalated_at")

        # --- qn-supervisor's list: Quảng Ninh's cases only, due first ---------------------------------------------
        for risk in (t.RISK_LEVEL_LOW, t.RISK_LEVEL_HIGH):
            qn_intake.RegisterCase(intake_pb.RegisterCaseRequest(
                client_request_id=rid(), province_code=QUANG_NINH, commune_code=BAI_CHAY,
                case_types=[t.CASE_TYPE_CHILD_SPECIAL_CIRCUMSTANCES], risk_level=risk,
                survivor=intake_pb.Survivor(is_child=True, age=12, sex=t.SEX_FEMALE)), timeout=10)
        supervisor = cw_grpc.CaseWorkServiceStub(qn_sup_ch)
        listed: list[Any] = []
        token = ""
        while True:
            page = supervisor.ListCases(cw.ListCasesRequest(page_size=2, page_token=token), timeout=10)
            listed += page.cases
            token = page.next_page_token
            if not token:
                break
        assert len(listed) >= 3 and {c.province_code for c in listed} == {QUANG_NINH}
        assert case_id not in {c.case_id for c in listed}
        dues = [c.next_due_at.ToDatetime() if c.HasField("next_due_at") else None for c in listed]
        with_due = [d for d in dues if d is not None]
        assert with_due == sorted(with_due) and dues[:len(with_due)] == with_due  # no deadline: last
        assert listed[0].case_id == child.case_id and listed[0].overdue
        assert supervisor.ListCases(cw.ListCasesRequest(query=case_id), timeout=10).cases == []

    # --- every step an event, ids and codes only ------------------------------------------------------------------
    kinds = [type(p).__name__ for p in _events(kafka_broker.bootstrap, case_id)]
    for kind in ("CaseRegistered", "CaseAssessed", "NeedAdded", "CasePlanRecorded", "ConsentGiven",
                 "FollowUpRecorded", "CaseReviewed", "CaseClosed"):
        assert kind in kinds, f"no {kind} for the Hà Tĩnh case: {kinds}"
    assert kinds.count("NeedAdded") == len(PLANNED) and kinds.count("ConsentGiven") == len(PLANNED)

    # --- the note's text on no topic, in no log, span or metric, nor in the database file ------------------------
    secret = canary.encode()
    for record in _all_records(kafka_broker.bootstrap):
        blob = b"".join([record.key or b"", record.value or b"", *(v for _, v in record.headers or [])])
        assert secret not in blob, f"a case worker's note on {record.topic}"
    for log in (network.data_dir / "logs").glob("*.log"):
        assert secret not in log.read_bytes(), f"a case worker's note in {log.name}"
    for span in spans.spans():
        assert canary not in str(span.attributes) and canary not in span.name
    for name in network.process_names():
        with urllib.request.urlopen(f"{network.metrics_url(name)}/metrics", timeout=5) as reply:
            assert secret not in reply.read(), f"a case worker's note in {name}'s metrics"


def _records(bootstrap: str, topics: list[str]) -> list[Any]:
    return [r for topic in TOPICS if topic.name in topics for r in read_records(bootstrap, topic.name)]


def _all_records(bootstrap: str) -> list[Any]:
    return _records(bootstrap, [topic.name for topic in TOPICS])


def _events(bootstrap: str, case_id: str, kind: type | None = None) -> list[Any]:
    """Intake's events about one case on both lanes, in publication order within each."""
    found = []
    for record in _records(bootstrap, ["intake.cases.v1", "intake.cases-urgent.v1"]):
        envelope = decode(record.value)
        if envelope.subject != f"case/{case_id}":
            continue
        payload = INTAKE_EVENTS.unpack(envelope)
        if kind is None or isinstance(payload, kind):
            found.append(payload)
    return found
