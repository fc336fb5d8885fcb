"""ops' own Kafka clients: reading the dead-letter topics, replaying a letter, and looking at topics and lag."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from ops.adapters.proto_mapping import dead_letter_record
from ops.domain.model import DeadLetterRecord
from refnet_platform import kafka_clients
from refnet_platform.topics import TOPICS

DLQ_TOPICS = tuple(t.name for t in TOPICS if t.dead_letter)
TIMEOUT_S = 5.0


class DeadLetterSource:
    """Reads the dead-letter topics from the positions ops stored (no consumer group: ops' table is the truth)."""

    def __init__(self, bootstrap: str, topics: tuple[str, ...] = DLQ_TOPICS) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self._consumer: Consumer | None = None

    def read(self, positions: dict[tuple[str, int], int], max_records: int = 500) -> list[DeadLetterRecord]:
        """The letters past the stored positions, oldest first per partition."""
        consumer = self._connect()
        listed = consumer.list_topics(timeout=TIMEOUT_S).topics
        partitions = [(topic, p) for topic in self.topics if topic in listed
                      for p in sorted(listed[topic].partitions)]
        ends = {tp: consumer.get_watermark_offsets(TopicPartition(*tp), timeout=TIMEOUT_S)[1] for tp in partitions}
        behind = [tp for tp in partitions if ends[tp] > positions.get(tp, 0)]
        if not behind:
            return []
        consumer.assign([TopicPartition(topic, p, positions.get((topic, p), 0)) for topic, p in behind])
        records: list[tuple[str, int, int, bytes]] = []
        try:
            reached = {tp: positions.get(tp, 0) for tp in behind}
            while len(records) < max_records and any(reached[tp] < ends[tp] for tp in behind):
                batch = consumer.consume(max_records - len(records), timeout=0.5)
                if not batch:
                    break
                for message in batch:
                    if message.error():
                        raise KafkaException(message.error())
                    tp = (message.topic(), message.partition())
                    records.append((*tp, message.offset(), message.value() or b""))
                    reached[tp] = message.offset() + 1
        finally:
            consumer.unassign()
        return [dead_letter_record(*record) for record in records]

    def _connect(self) -> Consumer:
        if self._consumer is None:
            self._consumer = kafka_clients.consumer(self.bootstrap, "ops-dead-letters")
        return self._consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


class Replayer:
    """Publishes a dead letter's original record, unchanged (same key, value and so envelope id), to its topic."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._producer: Producer | None = None
        self._lock = threading.Lock()

    def publish(self, topic: str, key: bytes, value: bytes, traceparent: str) -> int:
        with self._lock:
            if self._producer is None:
                self._producer = kafka_clients.producer(self.bootstrap, "ops-replay")
            producer = self._producer
        headers = [("traceparent", traceparent.encode())] if traceparent else []
        delivered: list[Any] = []
        producer.produce(topic, key=key or None, value=value, headers=headers,
                         on_delivery=lambda error, message: delivered.append((error, message)))
        producer.flush(kafka_clients.SEND_TIMEOUT_S)
        if not delivered:
            raise KafkaException(f"the broker did not acknowledge the replay to {topic} in time")
        error, message = delivered[0]
        if error is not None:
            raise KafkaException(error)
        return int(message.offset())

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
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
        self._admin: AdminClient | None = None
        self._lock = threading.Lock()

    def _client(self) -> AdminClient:
        with self._lock:
            if self._admin is None:
                self._admin = kafka_clients.admin(self.bootstrap, "ops-inspector")
            return self._admin

    def _wait(self, futures: dict[Any, Any]) -> dict[Any, Any]:
        try:
            return {key: future.result(timeout=TIMEOUT_S) for key, future in futures.items()}
        except Exception:
            self.close()  # a broken connection: start afresh next time
            raise

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        if not partitions:
            return {}
        found = self._wait(self._client().list_offsets({tp: OffsetSpec.latest() for tp in partitions},
                                                       request_timeout=TIMEOUT_S))
        return {(tp.topic, tp.partition): int(o.offset) for tp, o in found.items()}

    def topics(self) -> list[TopicInfo]:
        try:
            listed = self._client().list_topics(timeout=TIMEOUT_S).topics
        except Exception:
            self.close()
            raise
        described = {t.name: len(listed[t.name].partitions) if t.name in listed else 0 for t in TOPICS}
        ends = self.end_offsets([TopicPartition(t.name, p) for t in TOPICS for p in range(described[t.name])])
        return [TopicInfo(t.name, described[t.name], sum(o for (name, _), o in ends.items() if name == t.name),
                          t.writer, t.readers, "dead-letter" if t.dead_letter else "urgent" if t.urgent else "normal")
                for t in TOPICS]

    def lag(self) -> list[PartitionLag]:
        listing = self._wait({"groups": self._client().list_consumer_groups(request_timeout=TIMEOUT_S)})["groups"]
        groups = sorted(g.group_id for g in listing.valid)
        if not groups:
            return []
        described = self._wait(self._client().describe_consumer_groups(groups, request_timeout=TIMEOUT_S))
        members = {g: len(described[g].members) for g in groups}
        committed: dict[str, list[TopicPartition]] = {}
        for group in groups:  # the admin API asks for one group's offsets at a time
            answer = self._wait(self._client().list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group)], request_timeout=TIMEOUT_S))
            committed[group] = list(answer[group].topic_partitions or ())
        ends = self.end_offsets(sorted({TopicPartition(tp.topic, tp.partition) for tps in committed.values()
                                        for tp in tps}, key=lambda tp: (tp.topic, tp.partition)))
        rows = [PartitionLag(group, tp.topic, tp.partition, max(int(tp.offset), 0),
                             ends.get((tp.topic, tp.partition), 0), members[group])
                for group, tps in committed.items() for tp in tps]
        return sorted(rows, key=lambda r: (r.group, r.topic, r.partition))

    def close(self) -> None:
        self._admin = None  # librdkafka's admin client closes when it is no longer referenced
