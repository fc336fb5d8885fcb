"""The local infrastructure harness: a real Kafka broker and PostgreSQL, started and stopped cleanly."""

from __future__ import annotations

import subprocess
import uuid
from typing import NoReturn

import pytest
import sqlalchemy as sa
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource
from kafka.errors import KafkaTimeoutError

from refnet_dev.kafka import KafkaBroker, ensure_jars
from refnet_dev.postgres import PostgresCluster
from refnet_dev.util import pid_alive
from refnet_platform.topic_admin import ensure_topics
from refnet_platform.topics import TOPICS, Topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def scratch_topic(partitions: int = 1) -> Topic:
    # Not a registry topic: later tests that read registry topics from the start must not see test records.
    return Topic(f"harness.scratch-{uuid.uuid4().hex[:8]}.v1", "none", partitions, "test", (), ())


def roundtrip(bootstrap: str, topic: str, value: bytes) -> bytes:
    """Produce one record, then read it back through a consumer group (exercising __consumer_offsets)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        producer.send(topic, key=b"79", value=value).get(timeout=10)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"harness-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        consumer_timeout_ms=15_000,
    )
    try:
        record = next(iter(consumer))
        assert isinstance(record.value, bytes)
        return record.value
    finally:
        consumer.close()


def test_every_registry_topic_exists_with_its_partitions_and_retention(kafka_broker: KafkaBroker) -> None:
    with KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap) as admin:
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics([t.name for t in TOPICS])}
        configs = admin.describe_configs([ConfigResource("topic", t.name, ["retention.ms"]) for t in TOPICS])
    assert described == {t.name: t.partitions for t in TOPICS}
    retention = {name: int(c["retention.ms"]["value"]) for name, c in configs["topic"].items()}
    assert retention == {t.name: t.retention_ms for t in TOPICS}


def test_ensure_topics_is_idempotent(kafka_broker: KafkaBroker) -> None:
    assert ensure_topics(kafka_broker.bootstrap) == []


def test_a_produced_record_is_consumed_back(kafka_broker: KafkaBroker) -> None:
    topic = scratch_topic(partitions=3)
    assert ensure_topics(kafka_broker.bootstrap, [topic]) == [topic.name]
    try:
        assert roundtrip(kafka_broker.bootstrap, topic.name, b"hello") == b"hello"
    finally:
        with KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap) as admin:
            admin.delete_topics([topic.name])


def test_topics_are_never_auto_created(kafka_broker: KafkaBroker) -> None:
    unknown = f"harness.unknown-{uuid.uuid4().hex[:8]}.v1"
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, max_block_ms=2_000)
    try:
        with pytest.raises(KafkaTimeoutError):
            producer.send(unknown, b"lost").get(timeout=5)
    finally:
        producer.close()
    with KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap) as admin:
        assert unknown not in admin.list_topics()


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
        last_pid = broker.pid
    finally:
        broker.stop()
    assert last_pid is not None and not pid_alive(last_pid)
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
