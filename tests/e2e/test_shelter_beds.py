"""shelter's real processes (two api replicas, the worker, the relay) on real Kafka, with this test playing
referral: bed commands in, bed events out, holds that outlive a worker restart, and a live watcher. People
(operators, a shelter's staff) sign in to the real identity provider and call through the dev front door."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest
from confluent_kafka import Producer
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from refnet.common.v1 import types_pb2 as t
from refnet.shelter.v1 import events_pb2 as ev
from refnet.shelter.v1 import shelter_service_pb2 as pb
from refnet.shelter.v1 import shelter_service_pb2_grpc as pb_grpc
from refnet_dev.kafka import KafkaBroker, send
from refnet_dev.keycloak import Keycloak
from refnet_dev.network import Network, Process
from refnet_dev.util import eventually as wait_until
from refnet_platform import kafka_clients
from refnet_platform.envelope import OutgoingEvent, TypeRegistry, decode, wrap

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
COMMANDS, BEDS = "shelter.bed-commands.v1", "shelter.beds.v1"
QUANG_NINH, HA_TINH, CAN_THO = "22", "42", "92"
BED_EVENTS = TypeRegistry([ev])


eventually = partial(wait_until, poll_s=0.1)


@dataclass
class BedEvents:
    """Every event on shelter.beds.v1 since the module started, read by a background consumer."""

    bootstrap: str
    seen: list[Message] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        group = f"e2e-shelter-{uuid.uuid4().hex[:8]}"
        consumer = kafka_clients.consumer(self.bootstrap, group, group_id=group,
                                          **{"auto.offset.reset": "latest", "fetch.wait.max.ms": 50})
        try:
            consumer.subscribe([BEDS])
            while not self.stopping.is_set():
                for record in consumer.consume(100, timeout=0.2):
                    if record.error() is None:
                        self.seen.append(BED_EVENTS.unpack(decode(record.value())))
        finally:
            consumer.close()

    def about(self, referral_id: str, kind: type[Message]) -> list[Any]:
        return [e for e in list(self.seen) if isinstance(e, kind) and getattr(e, "referral_id", "") == referral_id]

    def wait(self, referral_id: str, kind: type[Message], timeout: float = 30) -> Any:
        return eventually(lambda: self.about(referral_id, kind), f"{kind.__name__} for {referral_id}", timeout)[0]


@dataclass
class Beds:
    """The shelter processes, a referral stand-in producing bed commands, and the bed events seen."""

    network: Network
    producer: Producer
    events: BedEvents
    channels: dict[tuple[str, str, str], grpc.Channel] = field(default_factory=dict)

    def command(self, message: Message, shelter_id: str) -> None:
        envelope = wrap(OutgoingEvent(message, COMMANDS, key=shelter_id, subject="referral/e2e"), "referral")
        send(self.producer, COMMANDS, envelope.SerializeToString(), key=shelter_id.encode())

    def reserve(self, shelter_id: str, province: str, hold: timedelta = timedelta(hours=1),
                referral_id: str | None = None) -> str:
        referral_id = referral_id or str(uuid.uuid4())
        until = Timestamp()
        until.FromDatetime(datetime.now(UTC) + hold)
        self.command(ev.ReserveBed(referral_id=referral_id, case_id=f"case-{referral_id[:8]}", shelter_id=shelter_id,
                                   province_code=province, target_group=t.TARGET_GROUP_WOMEN, hold_until=until),
                     shelter_id)
        return referral_id

    def stub(self, subject_id: str, role: str, replica: str = "shelter") -> pb_grpc.ShelterServiceStub:
        """A machine by its certificate; operators, supervisors, ops as the realm user `subject_id`."""
        key = (replica, subject_id, role)
        if key not in self.channels:
            self.channels[key] = self.network.channel(replica, subject_id, role)
        return pb_grpc.ShelterServiceStub(self.channels[key])

    def person(self, username: str, replica: str = "shelter") -> pb_grpc.ShelterServiceStub:
        """The realm user `username`, any role, through the dev front door."""
        key = (replica, username, "person")
        if key not in self.channels:
            self.channels[key] = self.network.person_channel(replica, username)
        return pb_grpc.ShelterServiceStub(self.channels[key])

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    def pool(self, shelter_id: str) -> pb.Availability:
        reply = self.stub("qn-worker-7", "operator").GetShelter(pb.GetShelterRequest(shelter_id=shelter_id), timeout=5)
        [pool] = reply.shelter.pools
        return pool


def start_second_api(network: Network) -> Process:
    """Another shelter-api replica on its own port, sharing the database (reachable as service "shelter-2")."""
    env = network.env()
    env["SHELTER_GRPC_PORT"] = str(network.port("shelter-2"))
    env["SHELTER_API_METRICS_PORT"] = str(network.port("shelter-api-2-metrics"))
    log = network.data_dir / "logs" / "shelter-api-2.log"
    with open(log, "ab") as out:
        popen = subprocess.Popen([str(Path(sys.executable).parent / "shelter-api")], env=env, stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    process = Process("shelter-api-2", popen, log)
    network.processes.append(process)  # stopped with the rest by network.stop()
    return process


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def beds(request: pytest.FixtureRequest, kafka_broker: KafkaBroker, keycloak: Keycloak,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Beds]:
    database_url = None
    if request.param == "postgresql":
        database_url = request.getfixturevalue("postgres_cluster").create_database(f"e2e_{uuid.uuid4().hex[:12]}")
    network = Network(kafka_broker.bootstrap, tmp_path_factory.mktemp(f"shelter-{request.param}"),
                      database_url=database_url, extra_env={"SHELTER_HOLD_CHECK_INTERVAL_S": "0.5"},
                      keycloak=keycloak)
    events = BedEvents(kafka_broker.bootstrap)
    reader = threading.Thread(target=events.run, name="bed-events", daemon=True)
    producer = kafka_clients.producer(kafka_broker.bootstrap, "test")
    try:
        reader.start()
        env = network.env()
        network.start_process("shelter-api", env)  # first: it migrates and loads the demo directory
        eventually(lambda: network.healthy("shelter"), "shelter-api healthy", 90)
        start_second_api(network)
        network.start_process("shelter-worker", env)
        network.start_process("shelter-relay", env)
        eventually(lambda: network.healthy("shelter-2"), "the second shelter-api healthy", 90)
        beds = Beds(network, producer, events)
        yield beds
        beds.close()
    finally:
        network.stop()
        producer.close()
        events.stopping.set()
        reader.join(10)


def test_a_reserve_command_holds_one_bed_however_often_it_is_sent(beds: Beds) -> None:
    referral = beds.reserve("ct-spc", CAN_THO)
    reserved = beds.events.wait(referral, ev.BedReserved)
    assert (reserved.shelter_id, reserved.province_code) == ("ct-spc", CAN_THO)
    beds.reserve("ct-spc", CAN_THO, referral_id=referral)  # the same referral again, as a new record
    arrived = beds.stub("ct-spc", "shelter").ConfirmArrival(pb.ConfirmArrivalRequest(referral_id=referral), timeout=5)
    assert arrived.reservation.status == pb.RESERVATION_STATUS_OCCUPIED
    assert beds.events.wait(referral, ev.BedOccupied).shelter_id == "ct-spc"
    time.sleep(1)
    assert len(beds.events.about(referral, ev.BedReserved)) == 1
    assert beds.pool("ct-spc").occupied == 1
    out = beds.stub("ct-spc", "shelter").CheckOut(pb.CheckOutRequest(referral_id=referral), timeout=5)
    assert out.reservation.reason == "checked_out"
    assert beds.events.wait(referral, ev.BedReleased).reason == "checked_out"
    assert (beds.pool("ct-spc").reserved, beds.pool("ct-spc").occupied) == (0, 0)


@pytest.mark.parametrize("reason", ["cancelled", "consent_withdrawn", "case_erased"])
def test_cancel_withdraw_and_erase_release_the_bed(beds: Beds, reason: str) -> None:
    referral = beds.reserve("ct-spc", CAN_THO)
    beds.events.wait(referral, ev.BedReserved)
    assert beds.pool("ct-spc").reserved == 1
    beds.command(ev.ReleaseBed(referral_id=referral, shelter_id="ct-spc", reason=reason), "ct-spc")
    released = beds.events.wait(referral, ev.BedReleased)
    assert (released.reason, released.shelter_id) == (reason, "ct-spc")
    assert released.case_id == ("" if reason == "case_erased" else f"case-{referral[:8]}")
    assert beds.pool("ct-spc").reserved == 0


def test_a_hold_expires_and_frees_its_bed_after_a_worker_restart(beds: Beds) -> None:
    referral = beds.reserve("ht-trusted-tranphu", HA_TINH, hold=timedelta(seconds=4))
    reserved = beds.events.wait(referral, ev.BedReserved)
    deadline = reserved.hold_until.ToDatetime(tzinfo=UTC)
    beds.network.stop_process("shelter-worker")
    # The deadline passes while no worker runs: nothing can expire it.
    time.sleep(max((deadline - datetime.now(UTC)).total_seconds(), 0) + 1.5)
    assert beds.events.about(referral, ev.HoldExpired) == []
    assert beds.pool("ht-trusted-tranphu").reserved == 1
    beds.network.start_process("shelter-worker")
    expired = beds.events.wait(referral, ev.HoldExpired)
    assert (expired.shelter_id, expired.case_id) == ("ht-trusted-tranphu", f"case-{referral[:8]}")
    assert eventually(lambda: beds.pool("ht-trusted-tranphu").reserved == 0, "the bed freed", 10)
    with pytest.raises(grpc.RpcError) as error:
        beds.stub("ht-trusted-tranphu", "shelter").ConfirmArrival(pb.ConfirmArrivalRequest(referral_id=referral),
                                                                  timeout=5)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def next_rows(watch: Any, shelter_id: str) -> list[pb.Availability]:
    """The next changed rows about one shelter (skipping any other change in the province)."""
    while True:
        rows = [a for a in next(watch).availability if a.shelter_id == shelter_id]
        if rows:
            return rows


def test_a_watcher_on_one_replica_sees_a_change_made_on_another(beds: Beds) -> None:
    watch = beds.stub("qn-worker-7", "operator", replica="shelter-2").WatchAvailability(
        pb.WatchAvailabilityRequest(province_code=QUANG_NINH), timeout=60)
    try:
        snapshot = next(watch)
        assert snapshot.snapshot and {a.shelter_id for a in snapshot.availability} == {"qn-spc", "qn-campha-temp"}
        before = next(a for a in snapshot.availability if a.shelter_id == "qn-campha-temp")
        staff = beds.stub("qn-campha-temp", "shelter")  # through the first replica
        staff.UpdateAvailability(pb.UpdateAvailabilityRequest(shelter_id="qn-campha-temp",
                                                              capacity=before.capacity + 1), timeout=5)
        [row] = next_rows(watch, "qn-campha-temp")
        assert (row.shelter_id, row.capacity, row.name) == ("qn-campha-temp", before.capacity + 1,
                                                             "Nhà tạm lánh cộng đồng Cẩm Phả")
        # A bed held through the worker reaches the watcher the same way.
        referral = beds.reserve("qn-campha-temp", QUANG_NINH)
        assert [a.reserved for a in next_rows(watch, "qn-campha-temp")] == [1]
        beds.command(ev.ReleaseBed(referral_id=referral, shelter_id="qn-campha-temp", reason="cancelled"),
                     "qn-campha-temp")
        assert [a.reserved for a in next_rows(watch, "qn-campha-temp")] == [0]
    finally:
        watch.cancel()


def test_one_shelters_credentials_cannot_update_another(beds: Beds) -> None:
    request = pb.UpdateAvailabilityRequest(shelter_id="qn-spc", capacity=0)
    for subject, role in (("qn-campha-temp", "shelter"), ("qn-worker-7", "operator")):
        with pytest.raises(grpc.RpcError) as error:
            beds.stub(subject, role).UpdateAvailability(request, timeout=5)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert beds.pool("qn-spc").capacity == 6
    own = beds.stub("qn-spc", "shelter").GetShelter(pb.GetShelterRequest(shelter_id="qn-spc"), timeout=5)
    assert own.shelter.address == "demo address withheld (QN-1)"
    seen = beds.stub("qn-worker-7", "operator").GetShelter(pb.GetShelterRequest(shelter_id="qn-spc"), timeout=5)
    assert (seen.shelter.address, seen.shelter.commune_code) == ("", "")  # both the shelter's own staff's only
    # The confidential address is on no bed event.
    assert not any(b"withheld" in e.SerializeToString() for e in beds.events.seen)


def test_a_signed_in_staff_member_confirms_her_shelters_arrivals_and_learns_nothing_of_another(beds: Beds) -> None:
    hers = beds.reserve("qn-spc", QUANG_NINH)
    elsewhere = beds.reserve("qn-campha-temp", QUANG_NINH)
    beds.events.wait(hers, ev.BedReserved)
    beds.events.wait(elsewhere, ev.BedReserved)
    staff = beds.person("qn-spc-staff")  # her token: role shelter, shelter_id qn-spc
    arrived = staff.ConfirmArrival(pb.ConfirmArrivalRequest(referral_id=hers), timeout=5)
    assert (arrived.reservation.shelter_id, arrived.reservation.status) == ("qn-spc", pb.RESERVATION_STATUS_OCCUPIED)
    assert beds.events.wait(hers, ev.BedOccupied).shelter_id == "qn-spc"

    # Another shelter's referral answers NOT_FOUND, in the very words of a referral id nobody reserved.
    made_up = str(uuid.uuid4())
    with pytest.raises(grpc.RpcError) as unknown:
        staff.ConfirmArrival(pb.ConfirmArrivalRequest(referral_id=made_up), timeout=5)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    for call, request in ((staff.ConfirmArrival, pb.ConfirmArrivalRequest(referral_id=elsewhere)),
                          (staff.CheckOut, pb.CheckOutRequest(referral_id=elsewhere))):
        with pytest.raises(grpc.RpcError) as error:
            call(request, timeout=5)
        assert (error.value.code(), error.value.details().replace(elsewhere, made_up)) == (
            grpc.StatusCode.NOT_FOUND, unknown.value.details())
    assert beds.events.about(elsewhere, ev.BedOccupied) == [] and beds.pool("qn-campha-temp").reserved == 1

    out = staff.CheckOut(pb.CheckOutRequest(referral_id=hers), timeout=5)
    assert out.reservation.reason == "checked_out"
    beds.command(ev.ReleaseBed(referral_id=elsewhere, shelter_id="qn-campha-temp", reason="cancelled"),
                 "qn-campha-temp")
    beds.events.wait(elsewhere, ev.BedReleased)
    assert (beds.pool("qn-spc").occupied, beds.pool("qn-campha-temp").reserved) == (0, 0)
