"""Poison records on every consumer's real topics: each bad record is dead-lettered with its reason (a type
not registered for the topic, or sent by a source that does not write it, included), every worker stays
up, and a real case flowing after them on the same partitions is still processed (no stuck partition)."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

import pytest
from google.protobuf import any_pb2

from refnet.common.v1 import types_pb2 as t
from refnet.common.v1.envelope_pb2 import DeadLetter, EventEnvelope
from refnet.intake.v1 import events_pb2 as intake_events
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet.notifications.v1 import events_pb2 as notification_events
from refnet.referral.v1 import events_pb2 as referral_events
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet.referral.v1 import referral_service_pb2_grpc as referral_grpc
from refnet.shelter.v1 import events_pb2 as shelter_events
from refnet_dev.kafka import KafkaBroker, committed_offsets, read_records, send
from refnet_dev.network import Network
from refnet_dev.util import eventually as wait_until
from refnet_platform import kafka_clients
from refnet_platform.consumer import writer_source
from refnet_platform.topics import topic as registered

pytestmark = pytest.mark.e2e
QUANG_NINH, BAI_CHAY, SHELTER = "22", "06673", "qn-spc"

UNKNOWN_ENUM = 12345
# A well-formed record of a type each topic carries, with an enum number no version of refnet defines.
WITH_UNKNOWN_ENUM = {
    "intake.cases.v1": lambda: intake_events.CaseRegistered(case_id=f"fuzz-{uuid.uuid4()}", province_code=QUANG_NINH,
                                                            risk_level=UNKNOWN_ENUM),  # type: ignore[arg-type]
    "referral.referrals.v1": lambda: referral_events.ReferralStatusChanged(
        referral_id=f"fuzz-{uuid.uuid4()}", to_status=UNKNOWN_ENUM),  # type: ignore[arg-type]
    "shelter.bed-commands.v1": lambda: shelter_events.ReserveBed(
        referral_id=f"fuzz-{uuid.uuid4()}", shelter_id=SHELTER, province_code=QUANG_NINH,
        target_group=UNKNOWN_ENUM),  # type: ignore[arg-type]
}
# Topic -> (key the real flow uses there, a well-formed payload of a type read there, the workers reading it).
TOPICS = {
    "intake.cases.v1": (QUANG_NINH, intake_events.CaseRegistered(case_id="fuzz", province_code=QUANG_NINH),
                        ("referral", "notifications", "ops")),
    "referral.referrals.v1": (QUANG_NINH, referral_events.ReferralStatusChanged(referral_id="fuzz"),
                              ("intake", "notifications", "ops")),
    "shelter.bed-commands.v1": (SHELTER, shelter_events.ReleaseBed(referral_id="fuzz", shelter_id=SHELTER),
                                ("shelter",)),
    "notifications.deliveries.v1": (QUANG_NINH, notification_events.NotificationSent(notice_id="fuzz-notice"),
                                    ("ops",)),
}


def _envelope(type_name: str, data: any_pb2.Any, key: str, source: str) -> bytes:
    return EventEnvelope(id=f"fuzz-{uuid.uuid4()}", source=source, type=type_name, subject="case/fuzz",
                         partition_key=key, specversion="1.0", data=data).SerializeToString()


def _any(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def poison(topic: str, payload: Any, key: str) -> dict[str, tuple[bytes, str | None]]:
    """name -> (record value, the DLQ reason expected; None: no DLQ entry)."""
    type_name = payload.DESCRIPTOR.full_name
    writer = writer_source(registered(topic))  # what the topic's one writer puts in `source`
    envelope = partial(_envelope, key=key, source=writer)
    valid = envelope(type_name, _any(payload))
    truncated_payload = _any(payload)
    truncated_payload.value = truncated_payload.value[:3]
    wrong = _any(intake_events.CaseErased(case_id="fuzz") if "intake" not in type_name
                 else referral_events.ReferralEscalated(referral_id="fuzz"))
    oversized = any_pb2.Any(type_url=f"type.googleapis.com/{type_name}", value=b"\xff" * (900 * 1024))
    return {
        "truncated envelope": (valid[: len(valid) // 2], "malformed: "),
        "truncated payload": (envelope(type_name, truncated_payload), "malformed: "),
        "wrong type in envelope": (envelope(type_name, wrong), "malformed: data is"),
        "type not registered for the topic": (envelope("refnet.fuzz.v1.NoSuchEvent", _any(payload)),
                                              "unregistered: refnet.fuzz.v1.NoSuchEvent is not registered"),
        "forged source": (_envelope(type_name, _any(payload), key, "refnet/fuzz"),
                          "unregistered: source 'refnet/fuzz'"),
        "oversized (900 KB)": (envelope(type_name, oversized), "malformed: "),
        "empty value": (b"", "malformed: empty record value"),
    } | ({"unknown enum value": (envelope(WITH_UNKNOWN_ENUM[topic]().DESCRIPTOR.full_name,
                                          _any(WITH_UNKNOWN_ENUM[topic]())), "?")}
         if topic in WITH_UNKNOWN_ENUM else {})


@pytest.fixture(scope="module")
def network(shared_network: Network) -> Network:
    return shared_network  # tests/conftest.py


eventually = partial(wait_until, timeout=45, poll_s=0.3)


def test_poison_records_are_dead_lettered_and_the_partition_moves_on(network: Network,
                                                                     kafka_broker: KafkaBroker) -> None:
    producer = kafka_clients.producer(kafka_broker.bootstrap, "fuzz", **{"message.max.bytes": 2 * 1024**2})
    sent: dict[tuple[str, int, int], tuple[str, str | None]] = {}  # (topic, partition, offset) -> (name, reason)
    last: dict[tuple[str, int], int] = {}
    try:
        for topic, (key, payload, _) in TOPICS.items():
            for name, (value, reason) in poison(topic, payload, key).items():
                meta = send(producer, topic, value, key=key.encode())
                sent[(topic, meta.partition, meta.offset)] = (name, reason)
                last[(topic, meta.partition)] = meta.offset
    finally:
        producer.close()

    # A real case after the poison, on the same partitions (province 22, shelter qn-spc): it must flow.
    with network.channel("intake", "qn-worker-7", "operator") as intake_ch, \
            network.channel("referral", "qn-police-baichay", "agency") as police_ch:
        intake = intake_grpc.IntakeServiceStub(intake_ch)
        case_id = intake.RegisterCase(intake_pb.RegisterCaseRequest(
            client_request_id=f"fuzz-{uuid.uuid4()}", province_code=QUANG_NINH, commune_code=BAI_CHAY,
            case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], risk_level=t.RISK_LEVEL_MEDIUM,
            survivor=intake_pb.Survivor(is_child=False, age=30, sex=t.SEX_FEMALE),
            needs=[intake_pb.Need(service_type=t.SERVICE_TYPE_POLICE_PROTECTION, consented=True),
                   intake_pb.Need(service_type=t.SERVICE_TYPE_SHELTER, consented=True)]), timeout=10).case.case_id
        police = referral_grpc.ReferralServiceStub(police_ch)
        # referral-worker read intake.cases.v1 past the poison; intake-worker read referral.referrals.v1.
        eventually(lambda: police.ListReferrals(referral_pb.ListReferralsRequest(case_id=case_id)).referrals,
                   "the police referral of a case registered after the poison")
        eventually(lambda: all(n.referral_id for n in intake.GetCase(
            intake_pb.GetCaseRequest(case_id=case_id)).case.needs), "intake recording what was arranged")

    # Every consumer committed past every poison record: no partition is stuck.
    for topic, (_, _, services) in TOPICS.items():
        for service in services:
            def moved_on(topic: str = topic, group: str = f"{service}-worker") -> bool:
                committed = committed_offsets(kafka_broker.bootstrap, group)
                return all(committed.get(tp, -1) > offset for tp, offset in last.items() if tp[0] == topic)
            eventually(moved_on, f"{service}-worker committing past the poison on {topic}")

    # Each bad record has its dead letter, with its reason; an unknown type has none.
    letters = _dead_letters(kafka_broker.bootstrap)
    for topic, (_, _, services) in TOPICS.items():
        for service in services:
            for (sent_topic, partition, offset), (name, reason) in sent.items():
                if sent_topic != topic:
                    continue
                where = (topic, partition, offset)
                found = [letter for letter in letters[service]
                         if (letter.original_topic, letter.original_partition, letter.original_offset) == where]
                if reason is None:
                    assert not found, f"{service}-worker dead-lettered the {name} record on {topic}"
                    continue
                if reason == "?":  # proto3 enums are open: handled as unknown, or dead-lettered naming the enum
                    assert len(found) <= 1 and all("Status" in f.error or "status" in f.error for f in found), found
                    continue
                assert len(found) == 1, f"{service}-worker: no dead letter for the {name} record on {topic}"
                assert found[0].consumer == f"{service}-worker"
                assert found[0].error.startswith(reason), (name, found[0].error[:200])

    # Dead letters are counted, and every process is still up.
    for service in {s for _, _, services in TOPICS.values() for s in services}:
        assert 'outcome="dead_lettered"' in _metrics(network, f"{service}-worker"), service
    network.check_alive()


def _dead_letters(bootstrap: str) -> dict[str, list[DeadLetter]]:
    services = ("intake", "referral", "shelter", "notifications", "ops")
    return {s: [DeadLetter.FromString(r.value or b"") for r in read_records(bootstrap, f"{s}.dlq.v1")]
            for s in services}


def _metrics(network: Network, name: str) -> str:
    import urllib.request

    with urllib.request.urlopen(f"{network.metrics_url(name)}/metrics", timeout=5) as reply:
        return str(reply.read().decode())
