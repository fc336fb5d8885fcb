"""The local infrastructure harness: a real Kafka broker and PostgreSQL, started and stopped cleanly."""

from __future__ import annotations

import socket
import subprocess
import uuid
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa
from confluent_kafka import KafkaException
from confluent_kafka.admin import ConfigResource

from refnet_dev import kafka
from refnet_dev.kafka import KafkaBroker, end_offsets, ensure_jars, send
from refnet_dev.postgres import PostgresCluster
from refnet_dev.util import FIRST_PORT, free_port, pid_alive
from refnet_platform import kafka_clients
from refnet_platform.topic_admin import ensure_topics
from refnet_platform.topics import TOPICS, Topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def scratch_topic(partitions: int = 1) -> Topic:
    # Not a registry topic: later tests that read registry topics from the start must not see test records.
    return Topic(f"harness.scratch-{uuid.uuid4().hex[:8]}.v1", "none", partitions, "test", (), ())


def roundtrip(bootstrap: str, topic: str, value: bytes) -> bytes:
    """Produce one record, then read it back through a consumer group (exercising __consumer_offsets)."""
    send(kafka_clients.producer(bootstrap, "harness"), topic, value, key=b"79")
    group = f"harness-{uuid.uuid4().hex[:8]}"
    consumer = kafka_clients.consumer(bootstrap, group, group_id=group)
    try:
        consumer.subscribe([topic])
        message = consumer.poll(15)
        assert message is not None and message.error() is None
        consumer.commit(message, asynchronous=False)
        got = message.value()
        assert isinstance(got, bytes)
        return got
    finally:
        consumer.close()


def test_every_registry_topic_exists_with_its_partitions_and_retention(kafka_broker: KafkaBroker) -> None:
    admin = kafka_clients.admin(kafka_broker.bootstrap, "harness")
    listed = admin.list_topics(timeout=10).topics
    described = {t.name: len(listed[t.name].partitions) for t in TOPICS if t.name in listed}
    configs = admin.describe_configs([ConfigResource("topic", t.name) for t in TOPICS])
    assert described == {t.name: t.partitions for t in TOPICS}
    retention = {resource.name: int(future.result(10)["retention.ms"].value) for resource, future in configs.items()}
    assert retention == {t.name: t.retention_ms for t in TOPICS}


def test_ensure_topics_is_idempotent(kafka_broker: KafkaBroker) -> None:
    assert ensure_topics(kafka_broker.bootstrap) == []


def test_a_produced_record_is_consumed_back(kafka_broker: KafkaBroker) -> None:
    topic = scratch_topic(partitions=3)
    assert ensure_topics(kafka_broker.bootstrap, [topic]) == [topic.name]
    try:
        assert roundtrip(kafka_broker.bootstrap, topic.name, b"hello") == b"hello"
    finally:
        admin = kafka_clients.admin(kafka_broker.bootstrap, "harness")  # held until its answer: no early teardown
        admin.delete_topics([topic.name])[topic.name].result(10)


def test_topics_are_never_auto_created(kafka_broker: KafkaBroker) -> None:
    unknown = f"harness.unknown-{uuid.uuid4().hex[:8]}.v1"
    producer = kafka_clients.producer(kafka_broker.bootstrap, "harness", **{"message.timeout.ms": 2_000})
    with pytest.raises(KafkaException):
        send(producer, unknown, b"lost")
    assert unknown not in kafka_clients.admin(kafka_broker.bootstrap, "harness").list_topics(timeout=10).topics


def test_jars_come_from_the_cache_the_second_time(monkeypatch: pytest.MonkeyPatch) -> None:
    libs = ensure_jars()

    def no_maven(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("mvn ran again")

    monkeypatch.setattr(subprocess, "run", no_maven)
    assert ensure_jars() == libs
    assert any(libs.glob("kafka_2.13-*.jar"))


@pytest.mark.kafka
def test_restart_keeps_data_and_stop_leaves_no_process() -> None:
    broker = KafkaBroker().start()
    try:
        topic = scratch_topic()
        ensure_topics(broker.bootstrap, [topic])
        port, pid = broker.port, broker.pid
        assert pid is not None
        broker.restart()
        assert broker.port == port and broker.pid != pid and not pid_alive(pid)
        assert roundtrip(broker.bootstrap, topic.name, b"survives") == b"survives"
        assert end_offsets(broker.bootstrap, [(topic.name, 0)]) == {(topic.name, 0): 1}
        last_pid = broker.pid
    finally:
        broker.stop()
    assert last_pid is not None and not pid_alive(last_pid)
    # Its offsets admin client went with it (one left would log a failed connection to the stopped broker).
    assert not [key for key in kafka._offset_admins if key[0] == broker.bootstrap]
    assert not broker.workdir.exists()
    broker.stop()  # idempotent


def test_database_accepts_create_insert_select(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE beds (id INTEGER PRIMARY KEY, shelter TEXT NOT NULL)"))
            conn.execute(sa.text("INSERT INTO beds (id, shelter) VALUES (1, 'Hà Nội SPC')"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT shelter FROM beds WHERE id = 1")).scalar_one() == "Hà Nội SPC"
    finally:
        engine.dispose()
    assert engine.dialect.name == database_url.split(":", 1)[0].split("+", 1)[0]


@pytest.mark.postgres
def test_postgres_stop_leaves_no_process() -> None:
    cluster = PostgresCluster().start()
    pid = cluster.pid
    assert pid is not None and pid_alive(pid)
    cluster.stop()
    assert not pid_alive(pid)
    assert not cluster.dir.exists()
    cluster.stop()  # idempotent


def test_free_ports_are_below_the_ephemeral_range_bindable_and_never_handed_out_twice() -> None:
    """A port from the ephemeral range could be taken by any outgoing connection before its process binds it."""
    ephemeral_start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(FIRST_PORT <= port < max(ephemeral_start, FIRST_PORT + 1000) for port in ports)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", ports[-1]))  # free for its process to take
