"""ops' own Kafka clients: reading the dead-letter topics, replaying a letter, and looking at topics and lag."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import OffsetSpec

from ops.adapters.proto_mapping import dead_letter_record
from ops.domain.model import DeadLetterRecord
from refnet_platform.kafka_security import kafka_python_options
from refnet_platform.topics import TOPICS

DLQ_TOPICS = tuple(t.name for t in TOPICS if t.dead_letter)


class DeadLetterSource:
    """Reads the dead-letter topics from the positions ops stored (no consumer group: ops' table is the truth)."""

    def __init__(self, bootstrap: str, topics: tuple[str, ...] = DLQ_TOPICS) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self._consumer: KafkaConsumer | None = None

    def read(self, positions: dict[tuple[str, int], int], max_records: int = 500) -> list[DeadLetterRecord]:
        """The letters past the stored positions, oldest first per partition."""
        consumer = self._connect()
        partitions = [TopicPartition(topic, p) for topic in self.topics
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(partitions, timeout_ms=5000)
        behind = [tp for tp in partitions if ends.get(tp, 0) > positions.get((tp.topic, tp.partition), 0)]
        if not behind:
            return []
        consumer.assign(behind)
        for tp in behind:
            consumer.seek(tp, positions.get((tp.topic, tp.partition), 0))
        records: list[tuple[str, int, int, bytes]] = []
        while len(records) < max_records:
            batch = consumer.poll(timeout_ms=500, max_records=max_records - len(records))
            if not batch:
                break
            for tp, got in batch.items():
                records.extend((tp.topic, tp.partition, r.offset, r.value or b"") for r in got)
            if all(consumer.position(tp) >= ends[tp] for tp in behind):
                break
        return [dead_letter_record(*record) for record in records]

    def _connect(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, client_id="ops-dead-letters",
                                           enable_auto_commit=False, group_id=None, **kafka_python_options())
        return self._consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


class Replayer:
    """Publishes a dead letter's original record, unchanged (same key, value and so envelope id), to its topic."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def publish(self, topic: str, key: bytes, value: bytes, traceparent: str) -> int:
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
                                               client_id="ops-replay", linger_ms=0, **kafka_python_options())
            producer = self._producer
        headers = [("traceparent", traceparent.encode())] if traceparent else []
        metadata = producer.send(topic, key=key or None, value=value, headers=headers).get(timeout=30)
        return int(metadata.offset)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    records: int  # end offsets summed: everything ever written (retention aside)
    writer: str
    readers: tuple[str, ...]
    lane: str


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int
    members: int

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


class KafkaInspector:
    """Topics and consumer-group lag as the broker sees them: it keeps working when a worker is down."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._admin: KafkaAdminClient | None = None
        self._lock = threading.Lock()

    def _client(self) -> KafkaAdminClient:
        if self._admin is None:
            self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="ops-inspector",
                                           request_timeout_ms=5000, **kafka_python_options())
        return self._admin

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            try:
                return getattr(self._client(), method)(*args, **kwargs)
            except Exception:
                self.close()  # a broken connection: start afresh next time
                raise

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if not partitions:
            return {}
        found = self._call("list_partition_offsets", {tp: OffsetSpec.LATEST for tp in partitions})
        return {tp: int(o.offset) for tp, o in found.items()}

    def topics(self) -> list[TopicInfo]:
        described = {t["topic"] if "topic" in t else t["name"]: len(t["partitions"])
                     for t in self._call("describe_topics", [t.name for t in TOPICS])}
        partitions = [TopicPartition(t.name, p) for t in TOPICS for p in range(described.get(t.name, 0))]
        ends = self.end_offsets(partitions)
        return [TopicInfo(t.name, described.get(t.name, 0),
                          sum(o for tp, o in ends.items() if tp.topic == t.name), t.writer, t.readers,
                          "dead-letter" if t.dead_letter else "urgent" if t.urgent else "normal")
                for t in TOPICS]

    def lag(self) -> list[PartitionLag]:
        groups = sorted(str(g["group_id"] if isinstance(g, dict) else g[0]) for g in self._call("list_groups"))
        if not groups:
            return []
        described = self._call("describe_groups", groups)
        members = {g: len((described.get(g) or {}).get("members", ()) if isinstance(described, dict) else ())
                   for g in groups}
        committed = self._call("list_group_offsets", {g: None for g in groups})
        partitions = sorted({tp for offsets in committed.values() for tp in offsets})
        ends = self.end_offsets(partitions)
        rows = [PartitionLag(group, tp.topic, tp.partition, max(int(o.offset), 0), ends.get(tp, 0), members[group])
                for group, offsets in committed.items() for tp, o in offsets.items()]
        return sorted(rows, key=lambda r: (r.group, r.topic, r.partition))

    def close(self) -> None:
        if self._admin is not None:
            try:
                self._admin.close()
            finally:
                self._admin = None
