"""shelter's gRPC API on a real socket with mutual TLS and a real database; WatchAvailability on real
Kafka (the outbox relay publishes, each api replica's feed tails shelter.beds.v1). Machines call with
their certificates; people (operators, ops, a shelter's own staff) through a front door with their
access token from the real identity provider."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from sqlalchemy import Engine

from refnet.common.v1 import types_pb2 as t
from refnet.shelter.v1 import shelter_service_pb2 as pb
from refnet.shelter.v1 import shelter_service_pb2_grpc as pb_grpc
from refnet_dev.certs import DevPki
from refnet_dev.kafka import KafkaBroker
from refnet_dev.keycloak import Keycloak
from refnet_platform import kafka_clients
from refnet_platform.caller import MACHINE_ROLES, Role
from refnet_platform.grpc_server import DomainErrorInterceptor
from refnet_platform.identity import (
    Authenticator,
    OidcConfig,
    TokenVerifier,
    bearer,
    channel_credentials,
    server_credentials,
)
from refnet_platform.outbox import Relay
from refnet_platform.runtime import open_database
from refnet_platform.vocabulary import TargetGroup
from shelter.bootstrap import bootstrap
from shelter.config import MIGRATIONS, Settings
from shelter.domain import commands
from shelter.domain.events import CapacityChanged
from shelter.domain.model import BedPool, Shelter
from shelter.entrypoints.grpc_api import ShelterServicer, add_shelter_service

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="session")]
QN = "22"
# The front door people call through here (the web app's certificate, OU=gateway).
FRONT_DOOR = "refnet-web"


@dataclass
class Api:
    """One shelter-api replica in this process, on its own port."""

    server: grpc.aio.Server
    servicer: ShelterServicer
    address: str


@dataclass
class Cluster:
    pki: DevPki
    keycloak: Keycloak
    engine: Engine
    replicas: list[Api]
    spc: str
    campha: str

    def stub(self, subject_id: str, role: str, replica: int = 0) -> pb_grpc.ShelterServiceStub:
        """A machine by its own certificate; operators, supervisors and ops are people: the realm user
        `subject_id` through the front door."""
        if Role(role) not in MACHINE_ROLES:
            return self.person(subject_id, replica)
        cert, key = self.pki.client(subject_id, role)
        channel = grpc.aio.secure_channel(self.replicas[replica].address, channel_credentials(self.pki.ca, cert, key))
        return pb_grpc.ShelterServiceStub(channel)

    def person(self, username: str, replica: int = 0) -> pb_grpc.ShelterServiceStub:
        """The realm user `username` (any role), every call carrying their access token."""
        cert, key = self.pki.client(FRONT_DOOR, Role.GATEWAY)
        keycloak = self.keycloak

        def add_token(context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
            try:
                callback(bearer(keycloak.token(username)), None)
            except Exception as exc:  # handed to gRPC, which fails the call with it
                callback((), exc)

        credentials = grpc.composite_channel_credentials(channel_credentials(self.pki.ca, cert, key),
                                                         grpc.metadata_call_credentials(add_token))
        return pb_grpc.ShelterServiceStub(grpc.aio.secure_channel(self.replicas[replica].address, credentials))


@pytest.fixture
def settings(database_url: str, kafka_broker: KafkaBroker) -> Settings:
    # As in production: DATABASE_URL with shelter's own schema on PostgreSQL.
    return Settings(DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap, watch_max_pending=50)


@pytest.fixture
def ids() -> tuple[str, str]:
    """Shelter ids of this test only: every test's events meet on the session's one shelter.beds.v1."""
    suffix = uuid.uuid4().hex[:6]
    return f"qn-spc-{suffix}", f"qn-campha-{suffix}"


@pytest.fixture
def engine(settings: Settings, ids: tuple[str, str]) -> Iterator[Engine]:
    engine = open_database(settings, MIGRATIONS)
    now = datetime.now(UTC)
    spc, campha = ids
    bus = bootstrap(settings, engine)
    bus.handle(commands.LoadShelters([
        Shelter(spc, "Trung tâm Bảo trợ xã hội", QN, "06673", address="the confidential address",
                pools=(BedPool(spc, TargetGroup.WOMEN_WITH_CHILDREN, 6, 0, 0, now),
                       BedPool(spc, TargetGroup.CHILDREN, 4, 0, 0, now))),
        Shelter(campha, "Nhà tạm lánh", QN, "06793", address="another address",
                pools=(BedPool(campha, TargetGroup.WOMEN, 2, 0, 0, now),))]))
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def relay(settings: Settings, engine: Engine) -> Iterator[Relay]:
    producer = kafka_clients.producer(settings.kafka_bootstrap_servers, "shelter-test-relay")
    relay = Relay(engine, producer, schema=settings.database[1])
    thread = threading.Thread(target=relay.run, name="relay", daemon=True)
    thread.start()
    # The loaded directory's bed events are on the topic before any replica's feed starts tailing it from its
    # end: otherwise one can reach the hub while a watcher reads its snapshot and come again as a change.
    deadline = time.monotonic() + 30
    while relay.backlog():
        assert time.monotonic() < deadline, "the relay did not publish the loaded shelters' bed events"
        time.sleep(0.05)
    try:
        yield relay
    finally:
        relay.stopping.set()
        thread.join(20)


@pytest_asyncio.fixture(loop_scope="session")
async def cluster(settings: Settings, engine: Engine, relay: Relay, ids: tuple[str, str], tmp_path: Path,
                  keycloak: Keycloak) -> AsyncIterator[Cluster]:
    pki = DevPki(tmp_path / "certs").ensure()
    authenticator = Authenticator(TokenVerifier(OidcConfig(keycloak.issuer)))
    replicas = []
    try:
        for _ in range(2):
            server = grpc.aio.server(interceptors=[DomainErrorInterceptor(authenticator)])
            servicer = add_shelter_service(server, settings, engine)
            port = server.add_secure_port("127.0.0.1:0", server_credentials(pki.server_dir))
            await server.start()
            replicas.append(Api(server, servicer, f"127.0.0.1:{port}"))
        for api in replicas:  # each replica's feed is on the bed events before the test makes changes
            await asyncio.wait_for(api.servicer.hub.live.wait(), 30)
        yield Cluster(pki, keycloak, engine, replicas, *ids)
    finally:
        for api in replicas:
            await api.server.stop(0)
            assert api.servicer.feed is not None
            api.servicer.feed.cancel()
            await asyncio.gather(api.servicer.feed, return_exceptions=True)


async def rpc_error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


def reserve(cluster: Cluster, referral_id: str, shelter_id: str = "") -> Any:
    command = commands.ReserveBed(referral_id, f"case-{referral_id}", shelter_id or cluster.spc, QN,
                                  TargetGroup.WOMEN_WITH_CHILDREN, datetime.now(UTC) + timedelta(hours=1))
    return asyncio.to_thread(cluster.replicas[0].servicer.bus.handle, command)


async def test_one_shelters_credentials_cannot_update_another(cluster: Cluster) -> None:
    request = pb.UpdateAvailabilityRequest(shelter_id=cluster.spc, target_group=t.TARGET_GROUP_CHILDREN, capacity=0)
    for subject, role in ((cluster.campha, "shelter"), ("qn-worker-7", "operator"), (cluster.spc, "agency")):
        error = await rpc_error(cluster.stub(subject, role).UpdateAvailability(request))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, (subject, role)
    reply = await cluster.stub(cluster.spc, "shelter").UpdateAvailability(request)
    assert (reply.availability.capacity, reply.availability.free, reply.availability.stale) == (0, 0, False)


async def test_capacity_below_the_beds_in_use_is_failed_precondition(cluster: Cluster) -> None:
    await reserve(cluster, "r1")
    staff = cluster.stub(cluster.spc, "shelter")
    request = pb.UpdateAvailabilityRequest(shelter_id=cluster.spc, target_group=t.TARGET_GROUP_WOMEN_WITH_CHILDREN)
    error = await rpc_error(staff.UpdateAvailability(request))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"capacity 0 is below the 1 women_with_children beds in use at {cluster.spc} (1 held, 0 occupied)" in (
        error.details())
    request.target_group = t.TARGET_GROUP_UNSPECIFIED  # two pools: the group must be named
    error = await rpc_error(staff.UpdateAvailability(request))
    assert (error.code(), error.details().split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "target_group")


async def test_the_address_reaches_only_the_shelters_own_staff(cluster: Cluster) -> None:
    own = await cluster.stub(cluster.spc, "shelter").GetShelter(pb.GetShelterRequest(shelter_id=cluster.spc))
    assert (own.shelter.address, own.shelter.commune_code) == ("the confidential address", "06673")
    assert len(own.shelter.pools) == 2
    for subject, role in (("qn-worker-7", "operator"), (cluster.campha, "shelter"), ("ops-oncall", "ops")):
        other = await cluster.stub(subject, role).GetShelter(pb.GetShelterRequest(shelter_id=cluster.spc))
        assert other.shelter.address == "" and other.shelter.name == "Trung tâm Bảo trợ xã hội"
        assert other.shelter.commune_code == "", (subject, role)  # the commune, too, is the shelter's own staff's
    # Referral's routing needs the commune to rank shelters by distance, never the address.
    routing = await cluster.stub("referral", "service").GetShelter(pb.GetShelterRequest(shelter_id=cluster.spc))
    assert (routing.shelter.address, routing.shelter.commune_code) == ("", "06673")
    listed = await cluster.stub("qn-worker-7", "operator").ListAvailability(
        pb.ListAvailabilityRequest(province_code=QN))
    assert b"confidential" not in listed.SerializeToString()


async def test_staff_confirm_arrival_and_check_out(cluster: Cluster) -> None:
    await reserve(cluster, "r1")
    staff, other = cluster.stub(cluster.spc, "shelter"), cluster.stub(cluster.campha, "shelter")
    # Another shelter's referral answers exactly as an unknown one: a referral id tells staff nothing about
    # where another shelter's survivor is (was PERMISSION_DENIED, which confirmed that the referral exists).
    unknown = await rpc_error(other.ConfirmArrival(pb.ConfirmArrivalRequest(referral_id="r0")))
    for call in (other.ConfirmArrival(pb.ConfirmArrivalRequest(referral_id="r1")),
                 other.CheckOut(pb.CheckOutRequest(referral_id="r1"))):
        error = await rpc_error(call)
        assert (error.code(), error.details().replace("r1", "r0")) == (grpc.StatusCode.NOT_FOUND, unknown.details())
    listed = await staff.ListReservations(pb.ListReservationsRequest())
    assert [(r.referral_id, r.status) for r in listed.reservations] == [("r1", pb.RESERVATION_STATUS_HELD)]
    arrived = await staff.ConfirmArrival(pb.ConfirmArrivalRequest(referral_id="r1"))
    assert arrived.reservation.status == pb.RESERVATION_STATUS_OCCUPIED
    out = await staff.CheckOut(pb.CheckOutRequest(referral_id="r1"))
    assert (out.reservation.status, out.reservation.reason) == (pb.RESERVATION_STATUS_RELEASED, "checked_out")
    error = await rpc_error(staff.ConfirmArrival(pb.ConfirmArrivalRequest(referral_id="r1")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    error = await rpc_error(staff.CheckOut(pb.CheckOutRequest(referral_id="nobody")))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_a_signed_in_staff_member_acts_only_for_her_own_shelter(cluster: Cluster) -> None:
    # qn-spc-staff signs in to the identity provider; her token names her shelter (shelter_id "qn-spc").
    bus = cluster.replicas[0].servicer.bus
    pool = BedPool("qn-spc", TargetGroup.WOMEN_WITH_CHILDREN, 3, 0, 0, datetime.now(UTC))
    await asyncio.to_thread(bus.handle, commands.LoadShelters([
        Shelter("qn-spc", "Trung tâm Bảo trợ xã hội tỉnh Quảng Ninh", QN, "06673", address="QN-1", pools=(pool,))]))
    await reserve(cluster, "r-hers", shelter_id="qn-spc")
    await reserve(cluster, "r-elsewhere")  # at this test's other shelter
    staff = cluster.person("qn-spc-staff")

    listed = await staff.ListReservations(pb.ListReservationsRequest())
    assert [(r.referral_id, r.shelter_id) for r in listed.reservations] == [("r-hers", "qn-spc")]
    arrived = await staff.ConfirmArrival(pb.ConfirmArrivalRequest(referral_id="r-hers"))
    assert (arrived.reservation.shelter_id, arrived.reservation.status) == ("qn-spc", pb.RESERVATION_STATUS_OCCUPIED)
    own = await staff.GetShelter(pb.GetShelterRequest(shelter_id="qn-spc"))
    assert (own.shelter.address, own.shelter.commune_code) == ("QN-1", "06673")

    # Another shelter's referral: NOT_FOUND, word for word as a referral id nobody ever reserved.
    made_up = await rpc_error(staff.ConfirmArrival(pb.ConfirmArrivalRequest(referral_id="r-made-up")))
    assert made_up.code() == grpc.StatusCode.NOT_FOUND
    for call in (staff.ConfirmArrival(pb.ConfirmArrivalRequest(referral_id="r-elsewhere")),
                 staff.CheckOut(pb.CheckOutRequest(referral_id="r-elsewhere"))):
        error = await rpc_error(call)
        assert (error.code(), error.details().replace("r-elsewhere", "r-made-up")) == (
            grpc.StatusCode.NOT_FOUND, made_up.details())
    # Nor may she read or change the other shelter's records.
    for call in (staff.ListReservations(pb.ListReservationsRequest(shelter_id=cluster.spc)),
                 staff.UpdateAvailability(pb.UpdateAvailabilityRequest(shelter_id=cluster.spc, capacity=0))):
        assert (await rpc_error(call)).code() == grpc.StatusCode.PERMISSION_DENIED
    other = await staff.GetShelter(pb.GetShelterRequest(shelter_id=cluster.spc))
    assert (other.shelter.address, other.shelter.commune_code) == ("", "")
    # The other shelter's hold is untouched; hers checks out.
    held = await cluster.stub(cluster.spc, "shelter").ListReservations(pb.ListReservationsRequest())
    assert [(r.referral_id, r.status) for r in held.reservations] == [("r-elsewhere", pb.RESERVATION_STATUS_HELD)]
    out = await staff.CheckOut(pb.CheckOutRequest(referral_id="r-hers"))
    assert (out.reservation.status, out.reservation.reason) == (pb.RESERVATION_STATUS_RELEASED, "checked_out")


async def test_availability_queries_name_a_bad_field(cluster: Cluster) -> None:
    operator = cluster.stub("qn-worker-7", "operator")
    error = await rpc_error(operator.ListAvailability(pb.ListAvailabilityRequest()))
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "province_code: is required")
    request = pb.ListAvailabilityRequest(province_code=QN, commune_code="06673", target_group=t.TARGET_GROUP_WOMEN)
    # Referral's routing sees the communes: the shelter in the survivor's commune first.
    found = await cluster.stub("referral", "service").ListAvailability(request)
    assert [(a.shelter_id, a.target_group, a.proximity, a.free, a.commune_code) for a in found.availability] == [
        (cluster.spc, t.TARGET_GROUP_WOMEN_WITH_CHILDREN, pb.PROXIMITY_SAME_COMMUNE, 6, "06673"),
        (cluster.campha, t.TARGET_GROUP_WOMEN, pb.PROXIMITY_SAME_PROVINCE, 2, "06793")]
    assert not found.neighbours_included
    # An operator does not: no commune, and no nearer than the same province (same_commune would give the
    # commune away), so the two rank alike and come by shelter id.
    found = await operator.ListAvailability(request)
    assert sorted((a.shelter_id, a.target_group, a.proximity, a.free, a.commune_code) for a in found.availability) \
        == sorted([(cluster.spc, t.TARGET_GROUP_WOMEN_WITH_CHILDREN, pb.PROXIMITY_SAME_PROVINCE, 6, ""),
                   (cluster.campha, t.TARGET_GROUP_WOMEN, pb.PROXIMITY_SAME_PROVINCE, 2, "")])
    assert [a.shelter_id for a in found.availability] == sorted([cluster.spc, cluster.campha])
    assert not found.neighbours_included


async def next_message(call: Any, timeout: float = 5) -> pb.WatchAvailabilityResponse:
    message = await asyncio.wait_for(call.read(), timeout)
    assert message is not grpc.aio.EOF
    return message  # type: ignore[no-any-return]


async def next_rows(call: Any, cluster: Cluster, timeout: float = 5) -> list[pb.Availability]:
    """The next changed rows about this test's shelters (other tests' changes share the topic)."""
    deadline = time.monotonic() + timeout
    while True:
        message = await next_message(call, max(deadline - time.monotonic(), 0.01))
        assert not message.snapshot
        rows = [a for a in message.availability if a.shelter_id in (cluster.spc, cluster.campha)]
        if rows:
            return rows


async def test_a_watcher_on_another_replica_sees_each_change(cluster: Cluster) -> None:
    watcher = cluster.stub("qn-worker-7", "operator", replica=1).WatchAvailability(
        pb.WatchAvailabilityRequest(province_code=QN))
    try:
        snapshot = await next_message(watcher)
        assert snapshot.snapshot
        assert {(a.shelter_id, a.capacity) for a in snapshot.availability} == {
            (cluster.spc, 6), (cluster.spc, 4), (cluster.campha, 2)}
        # Staff change their counts through replica 0; the watcher is on replica 1.
        await cluster.stub(cluster.campha, "shelter").UpdateAvailability(
            pb.UpdateAvailabilityRequest(shelter_id=cluster.campha, capacity=5))
        [row] = await next_rows(watcher, cluster)
        assert (row.shelter_id, row.capacity, row.free, row.name) == (cluster.campha, 5, 5, "Nhà tạm lánh")
        # A bed held by the worker's path shows up the same way.
        await reserve(cluster, "r1")
        rows = await next_rows(watcher, cluster)
        assert [(a.shelter_id, a.reserved, a.free) for a in rows] == [(cluster.spc, 1, 5)]
    finally:
        watcher.cancel()


async def test_slow_and_vanished_watchers_block_no_one(cluster: Cluster) -> None:
    hub = cluster.replicas[1].servicer.hub
    slow = cluster.stub("qn-worker-7", "operator", replica=1).WatchAvailability(
        pb.WatchAvailabilityRequest(province_code=QN))
    fast = cluster.stub("qn-operator", "operator", replica=1).WatchAvailability(
        pb.WatchAvailabilityRequest(province_code=QN, target_group=t.TARGET_GROUP_WOMEN))
    try:
        await next_message(slow)
        await next_message(fast)
        staff = cluster.stub(cluster.campha, "shelter")
        for capacity in range(1, 31):  # the slow watcher reads nothing meanwhile
            await staff.UpdateAvailability(pb.UpdateAvailabilityRequest(shelter_id=cluster.campha,
                                                                         capacity=capacity))
        latest = 0
        while latest != 30:  # each read within next_rows' timeout: the slow watcher held no one up
            latest = max(a.capacity for a in await next_rows(fast, cluster))
        # The slow watcher, reading at last, is told the newest counts.
        seen = 0
        while seen != 30:
            seen = max(a.capacity for a in await next_rows(slow, cluster, 1))
        # A watcher that vanishes is forgotten.
        assert hub.watchers == 2
        slow.cancel()
        deadline = time.monotonic() + 2
        while hub.watchers != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert hub.watchers == 1
    finally:
        slow.cancel()
        fast.cancel()


async def test_a_watcher_too_far_behind_is_told_to_reconnect(cluster: Cluster) -> None:
    api = cluster.replicas[0]
    watcher = cluster.stub("qn-worker-7", "operator").WatchAvailability(pb.WatchAvailabilityRequest(province_code=QN))
    try:
        await next_message(watcher)
        # More pools change at once than a watcher may have unsent (50 in this cluster's settings).
        now = datetime.now(UTC)
        for i in range(60):
            api.servicer.hub.publish(CapacityChanged(QN, "06673", BedPool(f"s{i}", TargetGroup.WOMEN, 1, 0, 0, now, 9)))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            while True:
                await next_message(watcher)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "reconnect for a fresh snapshot" in raised.value.details()
    finally:
        watcher.cancel()
