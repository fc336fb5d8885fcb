"""Referral on the real network: every process, a real Kafka broker, mutual TLS, the case worker signed in
to a real Keycloak. Intake's events are put on its topics here as intake-relay would, so each case is
exactly what the test needs.

Shows: routing across commune → province → neighbouring province; an emergency's police and shelter at
once on the urgent lane; decline and timeout re-route; an escalation that fires after the worker was
down past the deadline; other agencies and guessed ids learn nothing; contact details refused before
acceptance and after withdrawal; no referral for a need without consent.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import events_pb2 as intake_events
from refnet.referral.v1 import events_pb2 as referral_events
from refnet.referral.v1 import referral_service_pb2 as pb
from refnet.referral.v1 import referral_service_pb2_grpc as referral_grpc
from refnet.shelter.v1 import events_pb2 as shelter_events
from refnet_dev.kafka import KafkaBroker, read_records, send
from refnet_dev.keycloak import Keycloak
from refnet_dev.network import Network
from refnet_dev.util import eventually
from refnet_platform import kafka_clients
from refnet_platform.envelope import OutgoingEvent, TypeRegistry, decode, wrap

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

QUANG_NINH, BAI_CHAY, HA_TU = "22", "06673", "06652"
EVENTS = TypeRegistry([referral_events, shelter_events])
# Low-risk referrals get 15 seconds to be accepted here, so the SLA timer can be watched; the others
# keep the defaults (a day for medium risk), so nothing else expires during the module.
LOW_RISK_ACCEPT_S = 15


@pytest.fixture(scope="module")
def network(kafka_broker: KafkaBroker, keycloak: Keycloak, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Network]:
    # Keycloak: the case worker is a person, who signs in and reads the case's referrals with her token.
    net = Network(kafka_broker.bootstrap, tmp_path_factory.mktemp("referral-e2e") / "var", keycloak=keycloak,
                  extra_env={"REFERRAL_ACCEPT_MINUTES_LOW": str(LOW_RISK_ACCEPT_S / 60),
                             "REFERRAL_SLA_CHECK_INTERVAL_S": "0.5"})
    try:
        net.start()
        yield net
    finally:
        net.stop()


@pytest.fixture(scope="module")
def intake(kafka_broker: KafkaBroker) -> Iterator[Callable[..., None]]:
    """Publishes one of intake's case events, as intake-relay would."""
    producer = kafka_clients.producer(kafka_broker.bootstrap, "test")

    def publish(message: Message, urgent: bool = False) -> None:
        name = "intake.cases-urgent.v1" if urgent else "intake.cases.v1"
        case_id = message.case_id
        envelope = wrap(OutgoingEvent(message, name, QUANG_NINH, f"case/{case_id}"), "intake")
        send(producer, name, envelope.SerializeToString(), key=QUANG_NINH.encode())

    try:
        yield publish
    finally:
        producer.close()




def new_case(publish: Callable[..., None], *needs: tuple[int, bool], commune: str = BAI_CHAY,
             sex: int = t.SEX_FEMALE, risk: int = t.RISK_LEVEL_MEDIUM, emergency: bool = False
             ) -> tuple[str, list[str]]:
    case_id = str(uuid.uuid4())
    refs = [intake_events.NeedRef(need_id=str(uuid.uuid4()), service_type=s, consented=c) for s, c in needs]
    publish(intake_events.CaseRegistered(
        case_id=case_id, province_code=QUANG_NINH, commune_code=commune, case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE],
        is_child=False, age_band="18-59", sex=sex, needs=refs, risk_level=risk, emergency=emergency,
        case_worker_id="qn-worker-7"), urgent=emergency)
    return case_id, [n.need_id for n in refs]


class Agencies:
    def __init__(self, network: Network) -> None:
        self.network = network
        self.channels: dict[tuple[str, str], grpc.Channel] = {}

    def stub(self, subject_id: str, role: str = "agency") -> Any:
        if (subject_id, role) not in self.channels:
            self.channels[subject_id, role] = self.network.channel("referral", subject_id, role)
        return referral_grpc.ReferralServiceStub(self.channels[subject_id, role])

    def of_case(self, case_id: str) -> list[pb.Referral]:
        """What the case worker sees: every referral of the case, oldest first."""
        reply = self.stub("qn-worker-7", "operator").ListReferrals(pb.ListReferralsRequest(case_id=case_id),
                                                                    timeout=10)
        return list(reply.referrals)

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()


@pytest.fixture(scope="module")
def agencies(network: Network) -> Iterator[Agencies]:
    found = Agencies(network)
    try:
        yield found
    finally:
        found.close()


def open_referrals(agencies: Agencies, case_id: str, service: int, count: int = 1) -> list[pb.Referral]:
    def probe() -> list[pb.Referral] | None:
        found = [r for r in agencies.of_case(case_id) if r.service_type == service]
        return found if len(found) >= count else None

    return eventually(probe, f"{count} referral(s) of service {service} for case {case_id}")


def records(bootstrap: str, name: str, case_id: str, referral_ids: tuple[str, ...] = ()) -> list[Message]:
    """Every payload on a topic about the case (or one of its referrals), oldest first per partition."""
    payloads = [EVENTS.unpack(decode(record.value)) for record in read_records(bootstrap, name)]
    return [p for p in payloads if getattr(p, "case_id", None) == case_id
            or getattr(p, "referral_id", None) in referral_ids]


def refused(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call(request, timeout=10)
    return error.value


def test_routing_goes_commune_then_province_then_neighbouring_province(
        network: Network, intake: Callable[..., None], agencies: Agencies, kafka_broker: KafkaBroker) -> None:
    in_bai_chay, _ = new_case(intake, (t.SERVICE_TYPE_POLICE_PROTECTION, True))
    in_ha_tu, _ = new_case(intake, (t.SERVICE_TYPE_POLICE_PROTECTION, True), commune=HA_TU)
    man, _ = new_case(intake, (t.SERVICE_TYPE_SHELTER, True), sex=t.SEX_MALE)

    [commune] = open_referrals(agencies, in_bai_chay, t.SERVICE_TYPE_POLICE_PROTECTION)
    assert commune.provider_id == "qn-police-baichay"  # the police of her own ward
    [province] = open_referrals(agencies, in_ha_tu, t.SERVICE_TYPE_POLICE_PROTECTION)
    assert province.provider_id.startswith("qn-police-")  # Hà Tu has none: the province's
    [neighbour] = open_referrals(agencies, man, t.SERVICE_TYPE_SHELTER)
    # No shelter in Quảng Ninh takes men: Hải Phòng's, next door, and the bed is held there.
    assert (neighbour.provider_id, neighbour.shelter_id) == ("hp-shelter-spc-men", "hp-spc-men")
    reserved = eventually(lambda: [e for e in records(kafka_broker.bootstrap, "shelter.beds.v1", man)
                                   if isinstance(e, shelter_events.BedReserved)], "the bed held in Hải Phòng")
    assert reserved[0].referral_id == neighbour.referral_id

    # The agency sees it; another agency, or anyone guessing an id, learns nothing.
    owner = agencies.stub("qn-police-baichay")
    assert owner.GetReferral(pb.GetReferralRequest(referral_id=commune.referral_id), timeout=10).referral.case_id \
        == in_bai_chay
    intruder = agencies.stub("qn-police-halong")
    theirs = refused(intruder.GetReferral, pb.GetReferralRequest(referral_id=commune.referral_id))
    guessed_id = str(uuid.uuid4())
    guessed = refused(intruder.GetReferral, pb.GetReferralRequest(referral_id=guessed_id))
    assert theirs.code() == guessed.code() == grpc.StatusCode.NOT_FOUND
    assert theirs.details().replace(commune.referral_id, "?") == guessed.details().replace(guessed_id, "?")
    stolen = refused(intruder.AcceptReferral, pb.AcceptReferralRequest(referral_id=commune.referral_id,
                                                                        request_id="steal"))
    assert stolen.code() == grpc.StatusCode.NOT_FOUND
    # Asking for another agency's list reads as an empty list, not a refusal.
    listing = intruder.ListReferrals(pb.ListReferralsRequest(provider_id="qn-police-baichay"), timeout=10)
    assert list(listing.referrals) == []


def test_an_emergency_sends_police_and_shelter_at_once_on_the_urgent_lane(
        intake: Callable[..., None], agencies: Agencies, kafka_broker: KafkaBroker) -> None:
    case_id, _ = new_case(intake, (t.SERVICE_TYPE_SHELTER, True), (t.SERVICE_TYPE_POLICE_PROTECTION, True),
                          risk=t.RISK_LEVEL_HIGH, emergency=True)
    [police] = open_referrals(agencies, case_id, t.SERVICE_TYPE_POLICE_PROTECTION)
    [shelter] = open_referrals(agencies, case_id, t.SERVICE_TYPE_SHELTER)
    assert police.emergency and shelter.emergency
    assert police.accept_by.ToSeconds() - police.requested_at.ToSeconds() == 15 * 60
    urgent = records(kafka_broker.bootstrap, "referral.referrals-urgent.v1", case_id)
    assert [e.service_type for e in urgent if isinstance(e, referral_events.ReferralRequested)] == [
        t.SERVICE_TYPE_POLICE_PROTECTION, t.SERVICE_TYPE_SHELTER]
    assert records(kafka_broker.bootstrap, "referral.referrals.v1", case_id) == []


def test_a_decline_goes_to_the_next_provider(intake: Callable[..., None], agencies: Agencies) -> None:
    case_id, _ = new_case(intake, (t.SERVICE_TYPE_POLICE_PROTECTION, True))
    [first] = open_referrals(agencies, case_id, t.SERVICE_TYPE_POLICE_PROTECTION)
    agencies.stub(first.provider_id).DeclineReferral(pb.DeclineReferralRequest(
        referral_id=first.referral_id, request_id=str(uuid.uuid4()), reason=pb.DECLINE_REASON_NO_CAPACITY),
        timeout=10)
    old, new = open_referrals(agencies, case_id, t.SERVICE_TYPE_POLICE_PROTECTION, count=2)
    assert (old.status, old.reason) == (pb.REFERRAL_STATUS_REJECTED, "no_capacity")
    assert new.status == pb.REFERRAL_STATUS_REQUESTED and new.provider_id not in ("", first.provider_id)
    assert (new.attempt, new.previous_referral_id) == (2, first.referral_id)


def test_a_timeout_escalates_and_re_routes_even_across_a_worker_restart(
        network: Network, intake: Callable[..., None], agencies: Agencies, kafka_broker: KafkaBroker) -> None:
    case_id, _ = new_case(intake, (t.SERVICE_TYPE_POLICE_PROTECTION, True), risk=t.RISK_LEVEL_LOW)
    [first] = open_referrals(agencies, case_id, t.SERVICE_TYPE_POLICE_PROTECTION)
    deadline = first.accept_by.ToSeconds()
    assert deadline - first.requested_at.ToSeconds() == LOW_RISK_ACCEPT_S

    network.stop_process("referral-worker")
    assert time.time() < deadline, "the worker took too long to stop for this test to mean anything"
    time.sleep(max(0.0, deadline - time.time()) + 2)
    # Past the deadline with nobody to act on it: the referral is still waiting, its deadline in its row.
    assert [r.status for r in agencies.of_case(case_id)] == [pb.REFERRAL_STATUS_REQUESTED]

    network.start_process("referral-worker")
    old, new = open_referrals(agencies, case_id, t.SERVICE_TYPE_POLICE_PROTECTION, count=2)
    assert (old.referral_id, old.status, old.reason) == (first.referral_id, pb.REFERRAL_STATUS_ESCALATED,
                                                         "not_accepted_in_time")
    assert (new.status, new.previous_referral_id) == (pb.REFERRAL_STATUS_REQUESTED, first.referral_id)
    assert new.provider_id not in ("", first.provider_id)

    def escalated() -> list[Message] | None:
        found = [e for e in records(kafka_broker.bootstrap, "referral.referrals.v1", case_id)
                 if isinstance(e, referral_events.ReferralEscalated)]
        return found or None

    [event] = eventually(escalated, "ReferralEscalated on Kafka")
    assert (event.referral_id, event.sla, event.rerouted_referral_id, event.rerouted_provider_id) == (
        first.referral_id, "accept", new.referral_id, new.provider_id)
    assert event.province_code == QUANG_NINH  # the province's supervisor is told


def test_consent_gates_referrals_and_contact_details(
        intake: Callable[..., None], agencies: Agencies, kafka_broker: KafkaBroker) -> None:
    case_id, (police_need, legal_need, shelter_need) = new_case(
        intake, (t.SERVICE_TYPE_POLICE_PROTECTION, True), (t.SERVICE_TYPE_LEGAL_AID, False),
        (t.SERVICE_TYPE_SHELTER, True))
    [police] = open_referrals(agencies, case_id, t.SERVICE_TYPE_POLICE_PROTECTION)
    [shelter] = open_referrals(agencies, case_id, t.SERVICE_TYPE_SHELTER)
    officer = agencies.stub(police.provider_id)
    before = refused(officer.GetSurvivorContact, pb.GetSurvivorContactRequest(referral_id=police.referral_id))
    assert before.code() == grpc.StatusCode.FAILED_PRECONDITION and "accepted" in before.details()

    officer.AcceptReferral(pb.AcceptReferralRequest(referral_id=police.referral_id, request_id=str(uuid.uuid4())),
                           timeout=10)
    for need_id, service in ((police_need, t.SERVICE_TYPE_POLICE_PROTECTION), (shelter_need, t.SERVICE_TYPE_SHELTER)):
        intake(intake_events.ConsentWithdrawn(case_id=case_id, province_code=QUANG_NINH, need_id=need_id,
                                              service_type=service))
    eventually(lambda: all(r.status == pb.REFERRAL_STATUS_CANCELLED for r in agencies.of_case(case_id)),
               "both referrals cancelled")
    after = refused(officer.GetSurvivorContact, pb.GetSurvivorContactRequest(referral_id=police.referral_id))
    assert after.code() == grpc.StatusCode.FAILED_PRECONDITION
    released = eventually(lambda: [e for e in records(kafka_broker.bootstrap, "shelter.beds.v1", case_id,
                                                      (shelter.referral_id,))
                                   if isinstance(e, shelter_events.BedReleased)], "the held bed released")
    assert released[0].referral_id == shelter.referral_id

    # The legal aid need never had consent: nothing was ever sent for it...
    sent = records(kafka_broker.bootstrap, "referral.referrals.v1", case_id)
    assert legal_need not in {e.need_id for e in sent if isinstance(e, referral_events.ReferralRequested)}
    # ...until consent is given for it.
    intake(intake_events.ConsentGiven(case_id=case_id, province_code=QUANG_NINH, need_id=legal_need,
                                      service_type=t.SERVICE_TYPE_LEGAL_AID, recipient_sectors=["legal_aid"],
                                      data_categories=["name", "phone"]))
    [legal] = open_referrals(agencies, case_id, t.SERVICE_TYPE_LEGAL_AID)
    assert (legal.need_id, legal.status) == (legal_need, pb.REFERRAL_STATUS_REQUESTED)
