"""The security suite, on the real network over mutual TLS: who may see what, which certificates get in,
consent gates, and a canary proving a survivor's personal data leaks nowhere (topics, logs, metrics,
spans, intake's database file)."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

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
from refnet_dev.certs import DevPki
from refnet_dev.kafka import KafkaBroker, read_records
from refnet_dev.network import Network
from refnet_dev.util import eventually
from refnet_platform.identity import channel_credentials
from refnet_platform.topics import TOPICS

pytestmark = pytest.mark.e2e
QUANG_NINH, BAI_CHAY = "22", "06673"
TAG = uuid.uuid4().hex[:10]
CANARY = {"name": f"Trần Thị Canary{TAG}", "phone": f"09{uuid.uuid4().int % 10**8:08d}",
          "address": f"Số {TAG} ngõ Canary, Bãi Cháy", "narrative": f"canary-narrative-{TAG} chồng đánh",
          # What a case worker writes in case work: a follow-up note, an assessment's summary, a goal.
          "follow_up_note": f"canary-note-{TAG} thăm nhà, chồng vẫn đe dọa"}


@pytest.fixture(scope="module")
def network(shared_network: Network) -> Network:
    return shared_network  # tests/conftest.py




def refused(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value


def test_access_consent_and_the_canary(network: Network, kafka_broker: KafkaBroker) -> None:
    with network.channel("intake", "qn-worker-7", "operator") as intake_ch, \
            network.channel("referral", "qn-police-baichay", "agency") as police_ch, \
            network.channel("referral", "qn-police-halong", "agency") as other_ch, \
            network.channel("referral", "qn-legal-aid", "agency") as legal_ch, \
            network.channel("intake", "qn-police-baichay", "agency") as agency_intake_ch, \
            network.channel("shelter", "qn-campha-temp", "shelter") as other_shelter_ch, \
            network.channel("shelter", "qn-worker-7", "operator") as shelter_ch, \
            network.channel("notifications", "qn-police-baichay", "agency") as notices_ch:
        intake = intake_grpc.IntakeServiceStub(intake_ch)
        police, other = referral_grpc.ReferralServiceStub(police_ch), referral_grpc.ReferralServiceStub(other_ch)
        case = intake.RegisterCase(intake_pb.RegisterCaseRequest(
            client_request_id=f"sec-{uuid.uuid4()}", province_code=QUANG_NINH, commune_code=BAI_CHAY,
            case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], risk_level=t.RISK_LEVEL_MEDIUM,
            survivor=intake_pb.Survivor(is_child=False, age=34, sex=t.SEX_FEMALE),
            needs=[intake_pb.Need(service_type=t.SERVICE_TYPE_POLICE_PROTECTION, consented=True),
                   intake_pb.Need(service_type=t.SERVICE_TYPE_SHELTER, consented=True),
                   intake_pb.Need(service_type=t.SERVICE_TYPE_LEGAL_AID, consented=False)],
            contact=intake_pb.Contact(name=CANARY["name"], phone=CANARY["phone"], address=CANARY["address"],
                                      safe_contact_note="only after 18:00", phone_is_safe=True),
            narrative=CANARY["narrative"], case_worker_id="qn-worker-7"), timeout=10).case
        mine = eventually(lambda: police.ListReferrals(
            referral_pb.ListReferralsRequest(case_id=case.case_id)).referrals, "the police referral")[0]
        made_up = str(uuid.uuid4())

        # Cross-agency: another agency learns nothing, exactly as for an id that does not exist.
        for name, call in {
            "GetReferral": lambda rid: other.GetReferral(referral_pb.GetReferralRequest(referral_id=rid)),
            "AcceptReferral": lambda rid: other.AcceptReferral(referral_pb.AcceptReferralRequest(
                referral_id=rid, request_id=str(uuid.uuid4()))),
            "GetSurvivorContact": lambda rid: other.GetSurvivorContact(
                referral_pb.GetSurvivorContactRequest(referral_id=rid)),
        }.items():
            theirs = refused(lambda c=call: c(mine.referral_id))
            unknown = refused(lambda c=call: c(made_up))
            assert theirs.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED), name
            assert (theirs.code(), theirs.details().replace(mine.referral_id, "ID")) == \
                   (unknown.code(), unknown.details().replace(made_up, "ID")), name
        assert not other.ListReferrals(referral_pb.ListReferralsRequest(case_id=case.case_id)).referrals
        # Naming another agency lists nothing, as for an agency with no referrals.
        assert not other.ListReferrals(referral_pb.ListReferralsRequest(provider_id="qn-police-baichay")).referrals

        # A shelter updating another shelter's beds; an agency calling intake's operator and internal APIs.
        update = refused(lambda: shelter_grpc.ShelterServiceStub(other_shelter_ch).UpdateAvailability(
            shelter_pb.UpdateAvailabilityRequest(shelter_id="qn-spc", capacity=99)))
        assert update.code() == grpc.StatusCode.PERMISSION_DENIED
        register = refused(lambda: intake_grpc.IntakeServiceStub(agency_intake_ch).RegisterCase(
            intake_pb.RegisterCaseRequest(client_request_id=str(uuid.uuid4()), province_code=QUANG_NINH)))
        assert register.code() == grpc.StatusCode.PERMISSION_DENIED
        contact = refused(lambda: contact_grpc.CaseContactServiceStub(agency_intake_ch).GetCaseContact(
            contact_pb.GetCaseContactRequest(case_id=case.case_id, referral_id=mine.referral_id,
                                             recipient_id="qn-police-baichay", purpose="curious",
                                             service_type=t.SERVICE_TYPE_POLICE_PROTECTION)))
        assert contact.code() == grpc.StatusCode.PERMISSION_DENIED

        # Consent: contact refused before acceptance, given after, refused again after withdrawal.
        before = refused(lambda: police.GetSurvivorContact(referral_pb.GetSurvivorContactRequest(
            referral_id=mine.referral_id)))
        assert before.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED)
        police.AcceptReferral(referral_pb.AcceptReferralRequest(referral_id=mine.referral_id,
                                                                request_id=str(uuid.uuid4())))
        # Intake answers from its own record of the referral, which its worker updates from referral's events:
        # until the acceptance has arrived there the read is refused, then it is given.
        def contact_once_recorded() -> referral_pb.GetSurvivorContactResponse | None:
            try:
                return police.GetSurvivorContact(referral_pb.GetSurvivorContactRequest(referral_id=mine.referral_id))
            except grpc.RpcError as error:
                if error.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                    raise
                return None

        got = eventually(contact_once_recorded, "intake to record the acceptance")
        assert got.name == CANARY["name"]
        need = next(n for n in case.needs if n.service_type == t.SERVICE_TYPE_POLICE_PROTECTION)
        intake.WithdrawConsent(intake_pb.WithdrawConsentRequest(client_request_id=str(uuid.uuid4()),
                                                                case_id=case.case_id, need_id=need.need_id))
        after = refused(lambda: police.GetSurvivorContact(referral_pb.GetSurvivorContactRequest(
            referral_id=mine.referral_id)))
        assert after.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED)

        # A bed and notices, so the canary has gone through every service.
        def held() -> bool:
            pools = shelter_grpc.ShelterServiceStub(shelter_ch).ListAvailability(
                shelter_pb.ListAvailabilityRequest(province_code=QUANG_NINH)).availability
            return any(p.shelter_id == "qn-spc" and p.reserved > 0 for p in pools)

        eventually(held, "a bed held for the canary case")
        eventually(lambda: notifications_grpc.NotificationsServiceStub(notices_ch).ListNotices(
            notifications_pb.ListNoticesRequest(recipient_id="qn-police-baichay", case_id=case.case_id)).notices,
            "a notice to the police")
        # Case work: what the case worker writes is sealed; read back through the case file only.
        work = cw_grpc.CaseWorkServiceStub(intake_ch)
        note = CANARY["follow_up_note"]
        work.RecordAssessment(cw_pb.RecordAssessmentRequest(
            client_request_id=str(uuid.uuid4()), case_id=case.case_id, risk_level=t.RISK_LEVEL_MEDIUM, summary=note,
            accessibility_needs=["easy_read"]), timeout=10)
        review_at = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
        work.RecordCasePlan(cw_pb.RecordCasePlanRequest(
            client_request_id=str(uuid.uuid4()), case_id=case.case_id, goals=[cw_pb.Goal(
                description=note, services=[t.SERVICE_TYPE_POLICE_PROTECTION],
                responsible_kind=it.RESPONSIBLE_KIND_AGENCY, responsible_id="qn-police-baichay",
                due_at=_timestamp(review_at))]), timeout=10)
        work.AddFollowUp(cw_pb.AddFollowUpRequest(client_request_id=str(uuid.uuid4()), case_id=case.case_id,
                                                  kind=it.FOLLOW_UP_KIND_HOME_VISIT, note=note), timeout=10)
        work.ReviewCase(cw_pb.ReviewCaseRequest(client_request_id=str(uuid.uuid4()), case_id=case.case_id,
                                                outcome=it.REVIEW_OUTCOME_CONTINUE_PLAN, note=note,
                                                next_review_at=_timestamp(review_at)), timeout=10)
        assert work.GetCaseFile(cw_pb.GetCaseFileRequest(case_id=case.case_id)).follow_ups[0].note == note
        # No referral was ever sent for the need without consent.
        time.sleep(1)
        assert not referral_grpc.ReferralServiceStub(legal_ch).ListReferrals(
            referral_pb.ListReferralsRequest(case_id=case.case_id)).referrals
    time.sleep(1.5)  # the span exporters' 200 ms batches, and the ops store
    _assert_canary_nowhere(network, kafka_broker, case.case_id)


def _timestamp(when: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def _assert_canary_nowhere(network: Network, kafka_broker: KafkaBroker, case_id: str) -> None:
    assert network.keycloak is not None
    secrets = {k: v.encode() for k, v in CANARY.items()}

    def leaks(blob: bytes) -> list[str]:
        return [k for k, v in secrets.items() if v in blob]

    scanned = 0
    for record in (r for tp in TOPICS for r in read_records(kafka_broker.bootstrap, tp.name)):
        scanned += 1
        blob = b"".join([record.key or b"", record.value or b"", *(v for _, v in record.headers or [])])
        assert not leaks(blob), f"{leaks(blob)} on {record.topic}"
    assert scanned, "nothing on any topic?"
    logs = list((network.data_dir / "logs").glob("*.log"))
    assert len(logs) == len(network.process_names())
    for log in logs:
        assert not leaks(log.read_bytes()), f"{leaks(log.read_bytes())} in {log.name}"
    for name in network.process_names():
        with urllib.request.urlopen(f"{network.metrics_url(name)}/metrics", timeout=5) as reply:
            body = reply.read()
        assert not leaks(body), f"{leaks(body)} in {name}'s /metrics"
    # The ops trace store: the case's trace through the console, and every stored span in its database.
    trace_request = urllib.request.Request(f"{network.console_url}/api/trace/{case_id}", headers={
        "Authorization": f"Bearer {network.keycloak.token('ops-oncall')}"})
    with urllib.request.urlopen(trace_request, timeout=10) as reply:
        trace = reply.read()
    assert json.loads(trace), "no trace stored for the case"
    assert not leaks(trace)
    ops_db = list(network.data_dir.glob("ops.db*"))
    assert ops_db, "no ops database"
    for path in [*ops_db, *network.data_dir.glob("intake.db*")]:  # SQLite: incl. the write-ahead log
        assert not leaks(path.read_bytes()), f"{leaks(path.read_bytes())} in {path.name}"


def test_bad_certificates_never_reach_a_handler(network: Network, tmp_path: Path) -> None:
    pki = network.pki
    expired = pki.client(f"expired-{TAG}", "agency", valid_days=1,
                         not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=10))
    foreign = DevPki(tmp_path / "foreign").ensure()
    foreign_cert = foreign.client("qn-police-baichay", "agency")
    counted_before = _get_case_counts(network)
    attempts = {
        "expired client certificate": grpc.secure_channel(network.address("intake"),
                                                          channel_credentials(pki.ca, *expired)),
        "foreign CA": grpc.secure_channel(network.address("intake"), channel_credentials(pki.ca, *foreign_cert)),
        "no client certificate": grpc.secure_channel(network.address("intake"), grpc.ssl_channel_credentials(
            root_certificates=pki.ca.read_bytes())),
        "plain text": grpc.insecure_channel(network.address("intake")),
    }
    for what, channel in attempts.items():
        with channel:
            error = refused(lambda: intake_grpc.IntakeServiceStub(channel).GetCase(  # noqa: B023
                intake_pb.GetCaseRequest(case_id=str(uuid.uuid4())), timeout=5))
            assert error.code() == grpc.StatusCode.UNAVAILABLE, (what, error.code(), error.details())
    # Nothing reached the handler: intake's api counted no GetCase beyond those other tests made before.
    assert _get_case_counts(network) == counted_before, "a GetCase reached intake's handler"


def _get_case_counts(network: Network) -> list[str]:
    """intake-api's metric lines that count GetCase calls (the network is shared: other modules call it too)."""
    with urllib.request.urlopen(f"{network.metrics_url('intake-api')}/metrics", timeout=5) as reply:
        metrics = reply.read().decode()
    return [line for line in metrics.splitlines() if 'GetCase"' in line and not line.startswith("#")]
