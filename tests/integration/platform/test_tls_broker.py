"""Every kind of refnet Kafka client on a broker whose only listener speaks TLS and requires a client
certificate (as a Strimzi cluster's does): topic admin, a relay (the real `intake-relay` process), a worker's
consumer and its dead-letter producer, ops' dead-letter collector, the console's replay and inspector, and
shelter-api's bed feed (which once opened its consumer without the TLS settings and never went live). Each
takes its security from the environment, as a process in the cluster does. Clients without a certificate, or
in plain text, are refused."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from confluent_kafka import KafkaException
from google.protobuf import any_pb2
from sqlalchemy import func, select

from intake.config import MIGRATIONS
from ops.adapters.kafka import DeadLetterSource, KafkaInspector, Replayer
from refnet.common.v1 import types_pb2
from refnet.common.v1.envelope_pb2 import EventEnvelope
from refnet.intake.v1 import events_pb2 as intake_events
from refnet.shelter.v1 import events_pb2 as shelter_events
from refnet_dev.certs import DevPki
from refnet_dev.kafka import KafkaBroker, read_records, send
from refnet_dev.util import eventually
from refnet_platform import kafka_clients
from refnet_platform.consumer import EventConsumer
from refnet_platform.engine import make_engine, read_connection
from refnet_platform.envelope import OutgoingEvent, TypeRegistry, new_event_id
from refnet_platform.kafka_clients import KafkaSecurity
from refnet_platform.migrations import migrate
from refnet_platform.tables import outbox
from refnet_platform.topic_admin import ensure_topics
from refnet_platform.topics import TOPICS
from refnet_platform.unit_of_work import UnitOfWork
from shelter.adapters.bed_feed import BedEventFeed
from shelter.domain.events import CapacityChanged

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(tls=DevPki(tmp_path_factory.mktemp("kafka-pki")))
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def tls_env(tls_broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The process environment of a client in the cluster: its certificate, key and the CA."""
    env = tls_broker.client_env("intake-relay")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


class RecordingHub:
    """Stands in for shelter-api's watchers: what the bed feed hands on."""

    def __init__(self) -> None:
        self.live = False
        self.changes: list[CapacityChanged] = []

    def connected(self) -> None:
        self.live = True

    def disconnected(self) -> None:
        self.live = False

    def publish(self, change: CapacityChanged) -> None:
        self.changes.append(change)


def test_every_client_kind_works_on_a_tls_only_broker(tls_broker: KafkaBroker, tls_env: dict[str, str],
                                                      tmp_path: Path) -> None:
    bootstrap = tls_broker.bootstrap
    # Topic admin: the registry's topics, created over TLS.
    assert sorted(ensure_topics(bootstrap)) == sorted(t.name for t in TOPICS)

    # A relay, the real process: three case events out of intake's outbox.
    database_url = f"sqlite:///{tmp_path / 'intake.db'}"
    engine = make_engine(database_url)
    migrate(engine, MIGRATIONS)
    cases = [f"tls-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    with UnitOfWork(engine, "intake") as work:
        for case_id in cases:
            work.publish(OutgoingEvent(intake_events.CaseClosed(case_id=case_id, province_code="22"),
                                       "intake.cases.v1", "22", f"case/{case_id}"))
        work.commit()
    env = {**os.environ, **tls_env, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "INTAKE_DATABASE_URL": database_url,
           "REFNET_DATA_DIR": str(tmp_path)}
    with (tmp_path / "relay.log").open("wb") as log:
        relay = subprocess.Popen([str(Path(sys.executable).parent / "intake-relay")], env=env, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def drained() -> bool:
            with read_connection(engine) as conn:
                return conn.execute(select(func.count()).where(outbox.c.sent_at.is_(None))).scalar_one() == 0
        eventually(drained, "intake-relay publishing over TLS", 60)
    finally:
        relay.terminate()
        relay.wait(30)
    engine.dispose()

    # A worker's consumer reads them; the one its handler refuses goes out by its dead-letter producer.
    handled: list[str] = []

    def handle(envelope: EventEnvelope, message: intake_events.CaseClosed) -> None:  # type: ignore[override]
        if message.case_id == cases[0]:
            raise ValueError("refused for the test")
        handled.append(message.case_id)

    worker = EventConsumer("referral", bootstrap, ["intake.cases.v1"], TypeRegistry([intake_events]),
                           handle, max_attempts=1)  # type: ignore[arg-type]

    async def consume() -> None:
        task = asyncio.create_task(worker.run())
        deadline = time.monotonic() + 60
        while (len(handled) < 2 or worker.counts["dead_lettered"] < 1) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        worker.stop()
        await asyncio.wait_for(task, 30)

    asyncio.run(consume())
    assert sorted(handled) == sorted(cases[1:]) and worker.counts["dead_lettered"] == 1

    # ops' collector reads the letter; the console replays it and sees topics and the worker's lag.
    source = DeadLetterSource(bootstrap)
    try:
        [letter] = [d for d in source.read({}) if d.consumer == "referral-worker"]
    finally:
        source.close()
    assert letter.original_topic == "intake.cases.v1"
    replayer = Replayer(bootstrap)
    try:
        offset = replayer.publish(letter.original_topic, letter.original_key, letter.original_value, "")
    finally:
        replayer.close()
    replayed = read_records(bootstrap, "intake.cases.v1", start={letter.original_partition: offset}, at_least=1)
    assert replayed[0].value == letter.original_value
    inspector = KafkaInspector(bootstrap)
    try:
        assert {t.name: t.partitions for t in inspector.topics()} == {t.name: t.partitions for t in TOPICS}
        assert {row.group for row in inspector.lag()} >= {"referral-worker"}
    finally:
        inspector.close()


def test_the_bed_feed_goes_live_on_a_tls_only_broker(tls_broker: KafkaBroker, tls_env: dict[str, str]) -> None:
    ensure_topics(tls_broker.bootstrap)
    hub = RecordingHub()
    feed = BedEventFeed(tls_broker.bootstrap, hub, retry_s=0.5)  # type: ignore[arg-type]
    shelter_id = f"qn-tls-{uuid.uuid4().hex[:6]}"
    data = any_pb2.Any()
    data.Pack(shelter_events.CapacityChanged(shelter_id=shelter_id, province_code="22", capacity=4, reserved=1,
                                             target_group=types_pb2.TARGET_GROUP_WOMEN, version=7))
    envelope = EventEnvelope(id=new_event_id(), source="refnet/shelter", type="refnet.shelter.v1.CapacityChanged",
                             subject=f"shelter/{shelter_id}", partition_key="22", specversion="1.0", data=data)

    async def watch() -> None:
        task = asyncio.create_task(feed.run())
        try:
            deadline = time.monotonic() + 30
            while not hub.live and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert hub.live, "the bed feed never went live on the TLS broker"
            await asyncio.to_thread(send, kafka_clients.producer(tls_broker.bootstrap, "shelter-relay"),
                                    "shelter.beds.v1", envelope.SerializeToString(), b"22")
            while not hub.changes and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(watch())
    [change] = hub.changes
    assert (change.pool.shelter_id, change.pool.capacity, change.pool.reserved) == (shelter_id, 4, 1)


@pytest.mark.parametrize("who", ["plain text", "TLS without a client certificate"])
def test_a_client_without_a_certificate_is_refused(tls_broker: KafkaBroker, who: str) -> None:
    security = (KafkaSecurity(KAFKA_SECURITY_PROTOCOL="PLAINTEXT") if who == "plain text"  # type: ignore[call-arg]
                else KafkaSecurity(KAFKA_SECURITY_PROTOCOL="SSL",  # type: ignore[call-arg]
                                   KAFKA_SSL_CAFILE=tls_broker.client_env()["KAFKA_SSL_CAFILE"]))
    admin = kafka_clients.admin(tls_broker.bootstrap, "refused", security, **{"log_level": 0})
    with pytest.raises(KafkaException):
        admin.describe_cluster(request_timeout=3).result(timeout=5)


def test_sasl_over_tls_from_the_same_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same factory, given KAFKA_SECURITY_PROTOCOL=SASL_SSL and a user: admin, producer, a worker's consumer
    and the bed feed's aiokafka consumer connect; a wrong password is refused."""
    with KafkaBroker(tls=DevPki(tmp_path / "pki"), sasl_users={"intake-relay": "relay-secret"}) as broker:
        for name, value in broker.client_env("intake-relay").items():
            monkeypatch.setenv(name, value)
        assert "intake.cases.v1" in ensure_topics(broker.bootstrap)
        sent = send(kafka_clients.producer(broker.bootstrap, "intake-relay"), "intake.cases.v1", b"v", b"22")

        async def read_back() -> bytes | None:
            consumer = kafka_clients.aio_consumer(bootstrap=broker.bootstrap, client_id="sasl-test",
                                                  enable_auto_commit=False)
            await consumer.start()
            try:
                partition = TopicPartition("intake.cases.v1", sent.partition)
                consumer.assign([partition])
                consumer.seek(partition, sent.offset)
                record = await asyncio.wait_for(consumer.getone(), 30)
                return record.value
            finally:
                await consumer.stop()

        assert asyncio.run(read_back()) == b"v"
        monkeypatch.setenv("KAFKA_SASL_PASSWORD", "not-the-password")
        admin = kafka_clients.admin(broker.bootstrap, "sasl-wrong", **{"log_level": 0})
        with pytest.raises(KafkaException):
            admin.describe_cluster(request_timeout=3).result(timeout=5)
