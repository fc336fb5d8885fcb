"""One case through intake → referral → shelter → notifications, on real Kafka with the real processes. The
case worker signs in to the real Keycloak (qn-worker-7, a Quảng Ninh operator) and calls through the dev front
door with her token; the agencies' systems call with their certificates."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet.notifications.v1 import notifications_service_pb2 as notifications_pb
from refnet.notifications.v1 import notifications_service_pb2_grpc as notifications_grpc
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet.referral.v1 import referral_service_pb2_grpc as referral_grpc
from refnet.shelter.v1 import shelter_service_pb2 as shelter_pb
from refnet.shelter.v1 import shelter_service_pb2_grpc as shelter_grpc
from refnet_dev.kafka import KafkaBroker, read_records
from refnet_dev.keycloak import Keycloak
from refnet_dev.network import Network
from refnet_dev.otlp import SpanCollector
from refnet_dev.util import eventually
from refnet_platform.topics import TOPICS

pytestmark = pytest.mark.e2e

QUANG_NINH, BAI_CHAY = "22", "06673"


@pytest.fixture
def spans() -> Iterator[SpanCollector]:
    collector = SpanCollector().start()
    try:
        yield collector
    finally:
        collector.stop()


@pytest.fixture
def network(kafka_broker: KafkaBroker, keycloak: Keycloak, spans: SpanCollector, tmp_path: Path) -> Iterator[Network]:
    # SQLite: the same flow on PostgreSQL, every process as its service's own role, is tests/e2e/test_erasure.py's.
    net = Network(kafka_broker.bootstrap, tmp_path / "var", otlp_endpoint=spans.endpoint, keycloak=keycloak)
    try:
        net.start()
        yield net
    finally:
        net.stop()


def test_a_case_flows_to_referrals_a_bed_and_notices(network: Network, spans: SpanCollector,
                                                     kafka_broker: KafkaBroker) -> None:
    canary_name = f"Nguyễn Thị Canary {uuid.uuid4().hex[:8]}"
    canary_phone = f"09{uuid.uuid4().int % 10**8:08d}"
    request = intake_pb.RegisterCaseRequest(
        client_request_id=f"e2e-{uuid.uuid4()}", province_code=QUANG_NINH, commune_code=BAI_CHAY,
        case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], risk_level=t.RISK_LEVEL_MEDIUM,
        survivor=intake_pb.Survivor(is_child=False, age=31, sex=t.SEX_FEMALE),
        needs=[intake_pb.Need(service_type=t.SERVICE_TYPE_POLICE_PROTECTION, consented=True),
               intake_pb.Need(service_type=t.SERVICE_TYPE_SHELTER, consented=True),
               intake_pb.Need(service_type=t.SERVICE_TYPE_LEGAL_AID, consented=False)],
        contact=intake_pb.Contact(name=canary_name, phone=canary_phone, address="Tổ 5, khu 3, Bãi Cháy",
                                  safe_contact_note="only after 18:00"),
        narrative=f"narrative mentioning {canary_name}", case_worker_id="qn-worker-7",
    )
    with network.channel("intake", "qn-worker-7", "operator") as intake_ch, \
            network.channel("referral", "qn-police-baichay", "agency") as police_ch, \
            network.channel("referral", "qn-shelter-spc", "agency") as shelter_agency_ch, \
            network.channel("referral", "qn-legal-aid", "agency") as legal_aid_ch, \
            network.channel("shelter", "qn-worker-7", "operator") as shelter_ch, \
            network.channel("notifications", "qn-police-baichay", "agency") as notifications_ch:
        intake = intake_grpc.IntakeServiceStub(intake_ch)
        agencies = {"qn-police-baichay": referral_grpc.ReferralServiceStub(police_ch),
                    "qn-shelter-spc": referral_grpc.ReferralServiceStub(shelter_agency_ch),
                    "qn-legal-aid": referral_grpc.ReferralServiceStub(legal_aid_ch)}
        shelters = shelter_grpc.ShelterServiceStub(shelter_ch)
        notices = notifications_grpc.NotificationsServiceStub(notifications_ch)

        registered = intake.RegisterCase(request, timeout=10)
        assert registered.created
        case_id = registered.case.case_id

        def referrals_for(provider: str) -> list[Any]:
            request = referral_pb.ListReferralsRequest(provider_id=provider, case_id=case_id)
            reply = agencies[provider].ListReferrals(request)
            return list(reply.referrals)

        police = eventually(lambda: referrals_for("qn-police-baichay"), "a police referral in Bãi Cháy")
        shelter_referral = eventually(lambda: referrals_for("qn-shelter-spc"),
                                      "a shelter referral to the Social Protection Centre in Bãi Cháy")
        assert police[0].service_type == t.SERVICE_TYPE_POLICE_PROTECTION
        assert shelter_referral[0].shelter_id == "qn-spc"

        def held_beds() -> int:
            reply = shelters.ListAvailability(shelter_pb.ListAvailabilityRequest(province_code=QUANG_NINH))
            return next(a.reserved for a in reply.availability if a.shelter_id == "qn-spc")

        eventually(lambda: held_beds() == 1, "a bed held at the Quảng Ninh Social Protection Centre")

        def provider_notices() -> list[Any]:
            reply = notices.ListNotices(notifications_pb.ListNoticesRequest(recipient_id="qn-police-baichay",
                                                                            case_id=case_id))
            return list(reply.notices)

        notice = eventually(provider_notices, "a notice to the police")[0]
        assert notice.referral_id == police[0].referral_id

        # Intake learns what was arranged for each consented need; nothing for the unconsented one.
        def arranged() -> dict[int, str] | None:
            case = intake.GetCase(intake_pb.GetCaseRequest(case_id=case_id)).case
            done = {n.service_type: n.referral_id for n in case.needs}
            consented = (t.SERVICE_TYPE_POLICE_PROTECTION, t.SERVICE_TYPE_SHELTER)
            return done if all(done[s] for s in consented) else None

        assert eventually(arranged, "intake recording the referrals")[t.SERVICE_TYPE_LEGAL_AID] == ""
        assert referrals_for("qn-legal-aid") == []

        # Repeating the request creates nothing new anywhere.
        again = intake.RegisterCase(request, timeout=10)
        assert (again.created, again.case.case_id) == (False, case_id)
        time.sleep(2)
        assert len(referrals_for("qn-police-baichay")) == 1
        assert len(referrals_for("qn-shelter-spc")) == 1
        assert held_beds() == 1
        assert len(provider_notices()) == 1

    # One trace from the gRPC call through every Kafka hop and every service.
    def one_trace() -> set[str] | None:
        collected = spans.spans()
        roots = [s for s in collected if s.service == "refnet-intake" and "RegisterCase" in s.name
                 and not s.parent_span_id]
        if not roots:
            return None
        trace_id = roots[0].trace_id
        services = {s.service for s in collected if s.trace_id == trace_id}
        wanted = {"refnet-intake", "refnet-referral", "refnet-shelter", "refnet-notifications"}
        return services if wanted <= services else None

    services = eventually(one_trace, "spans of all four services in the RegisterCase trace")
    assert len(services) == 4

    # The survivor's personal data appears on no topic, in no log line and in no span.
    secrets = [canary_name.encode(), canary_phone.encode()]
    for record in _all_records(kafka_broker.bootstrap):
        blob = b"".join([record.key or b"", record.value or b"", *(v for _, v in record.headers or [])])
        assert not any(secret in blob for secret in secrets), f"personal data on {record.topic}"
    for log in (network.data_dir / "logs").glob("*.log"):
        text = log.read_bytes()
        assert not any(secret in text for secret in secrets), f"personal data in {log.name}"
    for span in spans.spans():
        assert canary_name not in str(span.attributes) and canary_phone not in str(span.attributes)
    intake_db = network.data_dir / "intake.db"
    if intake_db.exists():  # on SQLite: encrypted at rest, so not even the database file holds it
        assert not any(secret in intake_db.read_bytes() for secret in secrets)


def _all_records(bootstrap: str) -> list[Any]:
    records = [record for topic in TOPICS for record in read_records(bootstrap, topic.name)]
    assert records, "the flow published nothing?"
    return records
