"""Publishes failed deliveries to notifications.dlq.v1, as the worker does for records it gives up on."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from confluent_kafka import Producer

from notifications.adapters.proto_mapping import dead_letter
from notifications.domain.events import NotificationFailed
from refnet_platform import kafka_clients
from refnet_platform.outbox import Sends
from refnet_platform.telemetry import current_traceparent
from refnet_platform.topics import dead_letter_topic


class KafkaDeadLetters:
    def __init__(self, bootstrap: str, topic: str = dead_letter_topic("notifications")) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer: Producer | None = None
        self._lock = threading.Lock()

    def publish(self, letters: Sequence[NotificationFailed]) -> None:
        """Returns once the broker has every letter (raises otherwise, and they are published again)."""
        with self._lock:
            if self._producer is None:  # connects on first use, not when the worker is wired
                self._producer = kafka_clients.producer(self.bootstrap, "notifications-dead-letters")
            producer = self._producer
        headers: list[tuple[str, str | bytes | None]] = [("traceparent", current_traceparent().encode())]
        sends = Sends(producer)
        for f in letters:
            sends.send(self.topic, f.notice.province_code.encode(), dead_letter(f).SerializeToString(), headers)
        sends.wait()

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.flush(5)
                self._producer = None
