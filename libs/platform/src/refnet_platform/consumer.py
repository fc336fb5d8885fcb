"""The worker's consumer loop: priority lane first, inbox dedup, bounded retries, then the DLQ.

Built on aiokafka rather than faust agents: refnet needs the offset committed only after the
handler's DB transaction commits, an urgent lane drained before the normal one, and a shutdown
that is always bounded; faust commits on its own timer and its stop can deadlock on the event
in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy.exc import InterfaceError, OperationalError

from refnet.common.v1.envelope_pb2 import DeadLetter, EventEnvelope
from refnet_platform import kafka_clients, metrics
from refnet_platform.bus import MessageBus
from refnet_platform.context import Causation, Delivery, current_causation, current_delivery
from refnet_platform.envelope import MalformedEvent, TypeRegistry, UnknownEventType, UnregisteredEvent, decode
from refnet_platform.lanes import never, normal_lane, urgent_buffered
from refnet_platform.telemetry import context_from_traceparent, current_traceparent, exporting
from refnet_platform.timers import Tick, run_tick
from refnet_platform.topics import BY_NAME, Topic, dead_letter_topic
from refnet_platform.unit_of_work import BatchTransaction, Duplicate, crash_point

log = logging.getLogger(__name__)
tracer = trace.get_tracer("refnet.consumer")

# A handler gets the envelope and its unpacked payload and commits its own unit of work.
Handler = Callable[[EventEnvelope, Message], None]

# The envelope being handled, for a command_for that needs more than the payload (ops: the event time).
current_envelope: ContextVar[EventEnvelope | None] = ContextVar("current_envelope", default=None)


OUTAGE_BACKOFF_CAP_S = 5.0
# Offsets go to the broker at most this often (and when the worker stops), not after every batch: each commit is a
# write to the group coordinator's log, 3 or 4 per case at every worker. Always after the database commit; a record
# handled since the last one and redelivered after a crash or a rebalance finds its inbox row and is a no-op.
OFFSET_COMMIT_INTERVAL_S = 0.5


def _is_outage(exc: Exception) -> bool:
    """A lost connection or a locked database, as opposed to a bug in the SQL (which SQLite also reports
    as an OperationalError): only an outage is waited out."""
    text = str(exc).lower()
    return not any(bug in text for bug in ("no such table", "no such column", "syntax error"))


class _ShuttingDown(Exception):
    """Stopping while the database is away: leave the record uncommitted for the next start."""


class EventConsumer:
    def __init__(
        self,
        service: str,
        bootstrap: str,
        topics: list[str],
        types: TypeRegistry,
        handle: Handler,
        max_attempts: int = 3,
        retry_backoff_s: float = 0.2,
        batch_size: int = 100,
        ticks: tuple[Tick, ...] = (),
        urgent: set[str] | None = None,
        dlq_topic: str | None = None,
        batch: Callable[[], BatchTransaction] | None = None,
        batch_budget_s: float = 0.05,
        registry: Mapping[str, Topic] = BY_NAME,
    ) -> None:
        missing = [name for name in topics if name not in registry]
        if missing:
            raise ValueError(f"topics: {', '.join(missing)} not in the topic registry (refnet_platform.topics)")
        self.service = service
        self.consumer_name = f"{service}-worker"
        self.bootstrap = bootstrap
        self.topics = topics
        self.registry = registry
        self.urgent = urgent if urgent is not None else {t for t in topics if registry[t].urgent}
        self.types = types
        self.handle = handle
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        self.batch_size = batch_size
        self.ticks = ticks
        self.dlq_topic = dlq_topic or dead_letter_topic(service)
        self.batch = batch
        # On SQLite the service's api waits for the write lock while a batch transaction holds it (relays do not:
        # outbox.MARK_LOCK_WAIT_S). 50 ms rather than 10: fewer commits, in the bench 6-8 % less CPU per case and
        # 12-15 % faster through a backlog; the urgent lane still ends a batch at the next record.
        self.batch_budget_s = batch_budget_s
        self.stopping = asyncio.Event()
        self.counts: dict[str, int] = {"handled": 0, "duplicates": 0, "unknown_types": 0, "dead_lettered": 0}
        self._lag_exported_at = 0.0
        self._uncommitted: dict[TopicPartition, int] = {}  # handled (and committed in the database), not yet in Kafka
        self._normal_lane: ThreadPoolExecutor | None = None  # while running: the thread normal batches run on
        self._offsets_committed_at = 0.0

    async def run(self) -> None:
        producer = kafka_clients.aio_producer(self.bootstrap, f"{self.consumer_name}-dead-letters")
        await producer.start()
        self._normal_lane = normal_lane(f"{self.consumer_name}-normal-lane")
        consumer = await kafka_clients.started_worker_consumer(*self.topics, bootstrap=self.bootstrap,
                                                               group_id=self.consumer_name)
        log.info("consumer started", extra={"fields": {"topics": self.topics}})
        timers = [asyncio.create_task(run_tick(tick, self.stopping)) for tick in self.ticks]
        try:
            while not self.stopping.is_set():
                metrics.heartbeat()
                await self._export_lag(consumer)
                batch = await self._next_batch(consumer)
                if batch:
                    # The priority lane first: emergencies never wait behind a normal backlog.
                    ordered = sorted(batch.items(), key=lambda item: item[0].topic not in self.urgent)
                    await self._handle_records([record for _, part in ordered for record in part], consumer, producer)
                await self._commit_offsets(consumer)
        finally:
            for timer in timers:
                timer.cancel()
            try:  # bounded: with the broker away the records are redelivered after the restart, no-ops
                await asyncio.wait_for(self._commit_offsets(consumer, now=True), timeout=5)
            except (KafkaError, TimeoutError):
                log.warning("offsets not committed at stop")
            await asyncio.wait_for(consumer.stop(), timeout=10)
            await asyncio.wait_for(producer.stop(), timeout=10)
            self._normal_lane.shutdown(wait=False)
            self._normal_lane = None
            log.info("consumer stopped", extra={"fields": self.counts})

    async def _next_batch(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, list[Any]]:
        """Urgent partitions are asked first, so an emergency fetched behind a prefetched normal backlog
        is taken at the next batch, not after the whole buffer."""
        urgent = [tp for tp in consumer.assignment() if tp.topic in self.urgent]
        batch: dict[TopicPartition, list[Any]] = {}
        if urgent:
            batch = await consumer.getmany(*urgent, timeout_ms=0, max_records=self.batch_size)
        if not batch:
            batch = await consumer.getmany(timeout_ms=200, max_records=self.batch_size)
        return batch

    async def _handle_records(self, records: list[ConsumerRecord[bytes, bytes]], consumer: AIOKafkaConsumer,
                              producer: AIOKafkaProducer, between: bool = True) -> None:
        """Handles the records in order, then commits their offsets. Between chunks of normal records (each ends
        after `batch_budget_s`, or at the next record once an urgent one is in the consumer's buffer) an emergency
        that arrived meanwhile on the urgent lane (other partitions) is handled first."""
        incoming = [self._read(record) for record in records]
        done = 0
        urgent_arrived = urgent_buffered(consumer, self.urgent) if between else never
        try:
            while done < len(incoming):
                # Not within the batch's own urgent records (they come first): those after them would overtake them.
                if between and done and incoming[done].record.topic not in self.urgent:
                    urgent = await self._urgent_waiting(consumer)
                    if urgent:
                        await self._handle_records(urgent, consumer, producer, between=False)
                taken, stopped = await self._process_together(incoming[done:], urgent_arrived)
                done += taken
                if stopped:  # the record that stopped the fast path, on its own; then fast again
                    await self._process(incoming[done], producer)
                    done += 1
        except _ShuttingDown:
            pass  # what was not handled is redelivered after the restart
        self._uncommitted.update({TopicPartition(r.topic, r.partition): r.offset + 1 for r in records[:done]})

    async def _commit_offsets(self, consumer: AIOKafkaConsumer, now: bool = False) -> None:
        """The handled records' offsets, every OFFSET_COMMIT_INTERVAL_S (or `now`), for the partitions still ours:
        a revoked one's records are read again by its new owner and found in the inbox."""
        if not self._uncommitted or not (now or time.monotonic() - self._offsets_committed_at
                                          >= OFFSET_COMMIT_INTERVAL_S):
            return
        assigned = consumer.assignment()
        offsets = {tp: offset for tp, offset in self._uncommitted.items() if tp in assigned}
        self._uncommitted = {}
        self._offsets_committed_at = time.monotonic()
        if offsets:
            try:
                await consumer.commit(offsets)
            except KafkaError as exc:  # e.g. a rebalance under way: those records are redelivered, no-ops
                log.warning("offsets not committed", extra={"fields": {"error": type(exc).__name__}})

    async def _urgent_waiting(self, consumer: AIOKafkaConsumer) -> list[ConsumerRecord[bytes, bytes]]:
        urgent = [tp for tp in consumer.assignment() if tp.topic in self.urgent]
        if not urgent:
            return []
        batch = await consumer.getmany(*urgent, timeout_ms=0, max_records=self.batch_size)
        return [record for part in batch.values() for record in part]

    def _read(self, record: ConsumerRecord[bytes, bytes]) -> _Incoming:
        """The record decoded once, whichever path then takes it; a record that cannot be handled says why."""
        try:
            envelope = decode(record.value)
        except MalformedEvent as exc:
            return _Incoming(record, None, None, exc)
        try:
            admit(envelope, self.registry[record.topic])
            return _Incoming(record, envelope, self.types.unpack(envelope), None)
        except (MalformedEvent, UnknownEventType) as exc:
            return _Incoming(record, envelope, None, exc)

    async def _process_together(self, incoming: list[_Incoming],
                                urgent_arrived: Callable[[], bool] = never) -> tuple[int, bool]:
        """The fast path: leading records handled in one batch transaction for up to `batch_budget_s` (normal ones
        on the normal lane's thread, until `urgent_arrived()`). Returns how many were committed, and whether the
        next one needs the careful path (a failure to retry or dead-letter, a malformed record, the database
        away)."""
        if self.batch is None:
            return 0, True
        if incoming[0].record.topic in self.urgent or self._normal_lane is None:
            return await asyncio.to_thread(self._handle_together, incoming)
        run = contextvars.copy_context().run
        return await asyncio.get_running_loop().run_in_executor(self._normal_lane, run, self._handle_together,
                                                                incoming, urgent_arrived)

    def _handle_together(self, incoming: list[_Incoming],
                         urgent_arrived: Callable[[], bool] = never) -> tuple[int, bool]:
        """No savepoint per record: a record that fails (or leaves its work uncommitted) rolls the batch back;
        the records before it are done again in a new batch (past the budget: they took it once already),
        and the failing one goes to the careful path. Rare, and cheaper than two statements per record."""
        assert self.batch is not None
        end, budget_s, failed = len(incoming), self.batch_budget_s, False
        while True:
            try:
                with self.batch() as batch:
                    taken, stopped, committed = self._handle_in_batch(batch, incoming[:end], budget_s, urgent_arrived)
            except Exception:
                log.info("batch stopped; its records are handled one at a time", exc_info=True)
                return 0, True
            if committed:
                return taken, stopped or failed
            if taken == 0:
                return 0, True
            end, budget_s, failed, urgent_arrived = taken, float("inf"), True, never

    def _handle_in_batch(self, batch: BatchTransaction, incoming: list[_Incoming], budget_s: float,
                         urgent_arrived: Callable[[], bool]) -> tuple[int, bool, bool]:
        """(n, stopped, committed): the first n records handled and committed, and whether the next needs the
        careful path; or, not committed, the n-th record failed and the batch must be rolled back. The batch ends
        after `budget_s`, or at the next record once `urgent_arrived()`."""
        started = time.monotonic()
        # Every record of the poll (at most batch_size): within its budget a batch takes about all of them, and one
        # looked up but not reached costs a bound parameter, where one not looked up costs a query of its own.
        batch.look_up(self.consumer_name, [item.envelope.id for item in incoming if item.envelope is not None])
        outcomes: list[tuple[_Incoming, str, float | None]] = []  # (record, outcome, seconds handling it)
        stopped = False
        for n, item in enumerate(incoming):
            if isinstance(item.refused, UnknownEventType):
                outcomes.append((item, "unknown_type", None))
            elif item.refused is not None:  # malformed or unregistered: dead-lettered on the careful path
                stopped = True
                break
            else:
                done = self._handle_one(batch, item)
                if done is None or batch.spoiled:
                    return n, True, False
                outcomes.append(done)
            if time.monotonic() - started > budget_s or urgent_arrived():
                break
        batch.commit()
        crash_point("consumer.after_db_commit")  # the offsets are committed after the poll's records
        for item, result, seconds in outcomes:
            self._count(item.record.topic, _event_type(item), result)
            if seconds is not None and item.envelope is not None:
                metrics.handling_seconds(item.record.topic, item.envelope.type).observe(seconds)
        return len(outcomes), stopped, True

    def _handle_one(self, batch: BatchTransaction, item: _Incoming) -> tuple[_Incoming, str, float | None] | None:
        """One record in the batch: (record, outcome, seconds), or None if it failed."""
        assert item.envelope is not None and item.payload is not None
        if batch.handled(self.consumer_name, item.envelope.id):
            return item, "duplicate", None  # a redelivery: the handler is not even called
        with _record_span(item.record, item.envelope):
            started = time.perf_counter()
            try:
                self._handle_in_context(item.envelope, item.payload)
                outcome = "handled"
            except Duplicate:
                outcome = "duplicate"
            except Exception:
                return None  # the batch is rolled back; retried (or dead-lettered) one at a time
            return item, outcome, time.perf_counter() - started

    def _count(self, record_topic: str, event_type: str, outcome: str) -> None:
        """One record's outcome (handled, duplicate, unknown_type, dead_lettered): in counts and the metric."""
        self.counts[_COUNTED[outcome]] += 1
        if outcome == "unknown_type":
            log.warning("skipped unknown event type", extra={"fields": {"event_type": event_type}})
        metrics.consumed(record_topic, event_type, outcome).inc()

    async def _process(self, item: _Incoming, producer: AIOKafkaProducer) -> None:
        record, envelope, refused = item.record, item.envelope, item.refused
        with _record_span(record, envelope) as span:
            if isinstance(refused, UnknownEventType):
                self._count(record.topic, str(refused), "unknown_type")
                return
            if isinstance(refused, UnregisteredEvent):
                await self._dead_letter(record, producer, f"unregistered: {refused}", 1, refused.envelope)
                return
            if refused is not None:
                await self._dead_letter(record, producer, f"malformed: {refused}", 1, None)
                return
            assert envelope is not None and item.payload is not None
            await self._handle_with_retries(record, producer, envelope, item.payload, span)

    async def _handle_with_retries(self, record: ConsumerRecord[bytes, bytes], producer: AIOKafkaProducer,
                                   envelope: EventEnvelope, payload: Message, span: Any) -> None:
        attempt = 0
        outage_delay = self.retry_backoff_s
        started = time.perf_counter()
        try:
            while True:
                try:
                    await asyncio.to_thread(self._handle_in_context, envelope, payload)
                    self._count(record.topic, envelope.type, "handled")
                    crash_point("consumer.after_db_commit")  # the offset is committed after the batch
                    return
                except Duplicate:
                    self._count(record.topic, envelope.type, "duplicate")
                    return
                except Exception as exc:
                    if isinstance(exc, OperationalError | InterfaceError) and _is_outage(exc):
                        # The database is down or locked, not the record bad: the record waits, never the DLQ.
                        log.warning("database unavailable; the record waits", extra={"fields": {
                            "event_id": envelope.id, "error": type(exc).__name__}})
                        if self.stopping.is_set():
                            raise _ShuttingDown from None
                        await asyncio.sleep(outage_delay)
                        outage_delay = min(outage_delay * 2, OUTAGE_BACKOFF_CAP_S)
                        continue
                    attempt += 1
                    error = f"{type(exc).__name__}: {exc}"
                    log.warning("handler failed", extra={"fields": {"event_id": envelope.id, "attempt": attempt,
                                                                   "error": error}})
                    if attempt >= self.max_attempts:
                        span.set_status(Status(StatusCode.ERROR, error))
                        await self._dead_letter(record, producer, error, attempt, envelope)
                        return
                    metrics.RETRIES.labels(record.topic, envelope.type).inc()
                    await asyncio.sleep(self.retry_backoff_s * 2 ** (attempt - 1))
        finally:
            metrics.handling_seconds(record.topic, envelope.type).observe(time.perf_counter() - started)

    def _handle_in_context(self, envelope: EventEnvelope, payload: Message) -> None:
        # Runs in a worker thread with a copy of the context: the span, the cause and the inbox key.
        current_causation.set(Causation(envelope.correlation_id or envelope.id, envelope.id))
        current_delivery.set(Delivery(self.consumer_name, envelope.id))
        current_envelope.set(envelope)
        self.handle(envelope, payload)

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], producer: AIOKafkaProducer, error: str,
                           attempts: int, envelope: EventEnvelope | None) -> None:
        failed_at = Timestamp()
        failed_at.GetCurrentTime()
        letter = DeadLetter(
            consumer=self.consumer_name,
            original_topic=record.topic,
            original_partition=record.partition,
            original_offset=record.offset,
            original_key=record.key or b"",
            original_value=record.value or b"",
            error=error[:2000],
            attempts=attempts,
            failed_at=failed_at,
            event_id=envelope.id if envelope else "",
            event_type=envelope.type if envelope else "",
            traceparent=current_traceparent(),
        )
        await producer.send_and_wait(self.dlq_topic, key=record.key, value=letter.SerializeToString(),
                                     headers=[("traceparent", current_traceparent().encode())])
        event_type = envelope.type if envelope else ""
        self._count(record.topic, event_type, "dead_lettered")
        metrics.DEAD_LETTERS.labels(record.topic, event_type).inc()
        log.error("dead-lettered", extra={"fields": {"topic": record.topic, "partition": record.partition,
                                                    "offset": record.offset, "error": error[:300]}})

    async def _export_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Lag per assigned partition from the last fetch's high watermark; at most every 2 s."""
        if time.monotonic() - self._lag_exported_at < 2:
            return
        self._lag_exported_at = time.monotonic()
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is None:
                continue
            try:
                position = await consumer.position(tp)
            except Exception:  # e.g. revoked by a rebalance in between: next time
                continue
            metrics.CONSUMER_LAG.labels(self.consumer_name, tp.topic, str(tp.partition)).set(max(end - position, 0))

    def stop(self) -> None:
        self.stopping.set()

    def stop_on_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)


# Each outcome's key in EventConsumer.counts.
_COUNTED = {"handled": "handled", "duplicate": "duplicates", "unknown_type": "unknown_types",
            "dead_lettered": "dead_lettered"}


@dataclass(frozen=True, slots=True)
class _Incoming:
    """A record as decoded: its envelope and payload, or why it cannot be handled (MalformedEvent,
    UnregisteredEvent, UnknownEventType)."""

    record: ConsumerRecord[bytes, bytes]
    envelope: EventEnvelope | None
    payload: Message | None
    refused: Exception | None


def _event_type(item: _Incoming) -> str:
    if isinstance(item.refused, UnknownEventType):
        return str(item.refused)
    return item.envelope.type if item.envelope is not None else ""


@contextlib.contextmanager
def _record_span(record: ConsumerRecord[bytes, bytes], envelope: EventEnvelope | None) -> Iterator[Any]:
    """The record's consumer span, continuing the trace in its traceparent header. With no exporter there is no
    span to make (nobody would see it): the header's context alone is carried on, for logs and the outbox."""
    traceparent = ""
    for name, value in record.headers or ():
        if name == "traceparent":
            traceparent = (value or b"").decode(errors="replace")
    token = otel_context.attach(context_from_traceparent(traceparent))
    try:
        if not exporting():
            yield trace.get_current_span()
            return
        with tracer.start_as_current_span(f"{record.topic} process", kind=SpanKind.CONSUMER) as span:
            if span.is_recording():
                span.set_attributes({"messaging.system": "kafka", "messaging.destination.name": record.topic,
                                     "messaging.kafka.message.offset": record.offset})
                if envelope is not None:
                    span.set_attributes({"refnet.event_type": envelope.type, "refnet.event_id": envelope.id,
                                         **metrics.subject_ids(envelope.subject)})
            yield span
    finally:
        otel_context.detach(token)


def writer_source(registered: Topic) -> str:
    """The envelope `source` of the topic's one writer: refnet/<service> for "<service>-relay"."""
    return f"refnet/{registered.writer.rsplit('-', 1)[0]}"


def admit(envelope: EventEnvelope, registered: Topic) -> None:
    """Raises UnregisteredEvent unless the topic carries the envelope's type and its writer sent it. Read from
    the registry, so a type its owner adds there is admitted without touching any consumer."""
    if envelope.type not in registered.message_types:
        raise UnregisteredEvent(f"{envelope.type} is not registered for {registered.name}", envelope)
    expected = writer_source(registered)
    if envelope.source != expected:
        raise UnregisteredEvent(f"source {envelope.source!r} does not write {registered.name} "
                                f"(its writer is {registered.writer}, source {expected!r})", envelope)


def dispatching(bus: MessageBus, command_for: Callable[[Message], object | None]) -> Handler:
    """A handler that turns each payload into a domain command for the bus; other payloads are ignored."""

    def handle(envelope: EventEnvelope, message: Message) -> None:
        command = command_for(message)
        if command is not None:
            bus.handle(command)

    return handle
