"""The api's feed for WatchAvailability: it tails shelter.beds.v1 and publishes each pool's new counts to
the hub, so a change made through any api replica or the worker reaches the watchers on every replica.

No consumer group: each replica assigns itself every partition and starts at the end, so every replica
sees every change, nothing is committed and no group is left behind when a replica goes away.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import ConsumerRecord, TopicPartition

from refnet.shelter.v1 import events_pb2
from refnet_platform import kafka_clients
from refnet_platform.envelope import MalformedEvent, decode
from refnet_platform.topics import topic
from shelter.adapters.proto_mapping import BEDS_TOPIC, capacity_changed_from
from shelter.service_layer.watch import AvailabilityHub

log = logging.getLogger(__name__)
CAPACITY_CHANGED = events_pb2.CapacityChanged.DESCRIPTOR.full_name


class BedEventFeed:
    def __init__(self, bootstrap: str, hub: AvailabilityHub, retry_s: float = 2.0) -> None:
        self.bootstrap = bootstrap
        self.hub = hub
        self.retry_s = retry_s

    async def run(self) -> None:
        """Runs until cancelled; reconnects after a failure (watchers are ended meanwhile)."""
        partitions = [TopicPartition(BEDS_TOPIC, p) for p in range(topic(BEDS_TOPIC).partitions)]
        while True:
            # Made by the platform's factory, with the TLS and SASL settings every other client uses.
            consumer = kafka_clients.aio_consumer(
                bootstrap=self.bootstrap, client_id="shelter-api-watch", group_id=None, enable_auto_commit=False,
                auto_offset_reset="latest", isolation_level="read_committed",
                # A watcher should see a change within a second: don't let the broker sit on a quiet fetch.
                fetch_max_wait_ms=50)
            try:
                await consumer.start()
                consumer.assign(partitions)
                await consumer.seek_to_end(*partitions)
                for tp in partitions:  # make the positions concrete before watchers rely on them
                    await consumer.position(tp)
                self.hub.connected()
                log.info("bed-event feed live", extra={"fields": {"partitions": len(partitions)}})
                while True:
                    batch = await consumer.getmany(timeout_ms=1000)
                    for records in batch.values():
                        for record in records:
                            self._deliver(record)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("bed-event feed failed; reconnecting")
                self.hub.disconnected()
                await asyncio.sleep(self.retry_s)
            finally:
                await asyncio.wait_for(consumer.stop(), timeout=10)

    def _deliver(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            envelope = decode(record.value)
            if envelope.type != CAPACITY_CHANGED:
                return
            message = events_pb2.CapacityChanged()
            if not envelope.data.Unpack(message):
                raise MalformedEvent(f"data is {envelope.data.type_url}")
        except MalformedEvent as exc:
            log.warning("skipped a malformed bed event", extra={"fields": {"partition": record.partition,
                                                                          "offset": record.offset, "error": str(exc)}})
            return
        change = capacity_changed_from(message)
        if change:
            self.hub.publish(change)
