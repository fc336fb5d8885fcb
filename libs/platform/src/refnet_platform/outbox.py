"""The relay: publishes outbox rows in order with an idempotent producer, then marks them sent.

It wakes on commit: PostgreSQL NOTIFY (sent in the writer's transaction), or SQLite's data_version,
which changes when another connection commits; for a priority lane's row at once, for routine rows at most every
ROUTINE_ROUND_SPACING_S. A slow poll remains as a safety net. Only the relay holding
the service's lease (relay_lease) publishes; another copy stands by and takes over when it goes.
"""

from __future__ import annotations

import logging
import os
import select as select_module
import time
from collections import Counter
from typing import Any

from confluent_kafka import KafkaException, Producer
from inotify_simple import INotify
from inotify_simple import flags as inotify_flags
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy import Connection, Engine, bindparam, case, false, func, or_, select, update

from refnet.common.v1.envelope_pb2 import EventEnvelope
from refnet_platform import metrics
from refnet_platform.clock import system_clock
from refnet_platform.engine import LOCK_WAIT_S, READ_ONLY, WriteLockBusy, is_postgres, read_connection
from refnet_platform.kafka_clients import SEND_TIMEOUT_S
from refnet_platform.relay_lease import LeaseLost, RelayLease
from refnet_platform.stopping import Stopping
from refnet_platform.tables import outbox, outbox_channel
from refnet_platform.telemetry import context_from_traceparent, current_traceparent, exporting
from refnet_platform.topics import TOPICS
from refnet_platform.unit_of_work import URGENT_PAYLOAD, crash_point

log = logging.getLogger(__name__)
tracer = trace.get_tracer("refnet.relay")


_PENDING = (select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.value, outbox.c.event_type, outbox.c.traceparent)
            .where(outbox.c.sent_at.is_(None)))
# What a commit waiter on SQLite asks, on its own connection, before it wakes the relay.
_ANY_PENDING_SQLITE = f"SELECT 1 FROM {outbox.name} WHERE {outbox.c.sent_at.name} IS NULL LIMIT 1"
URGENT_TOPICS = sorted(t.name for t in TOPICS if t.urgent)
_URGENT_PENDING_SQLITE = (f"SELECT 1 FROM {outbox.name} WHERE {outbox.c.sent_at.name} IS NULL AND "
                          f"{outbox.c.topic.name} IN ({', '.join(repr(name) for name in URGENT_TOPICS)}) LIMIT 1")
# A routine round begins at least this long after the last round began; a commit with a priority lane's row
# wakes the relay at once. A round of one event (intake-api commits each case on its own, 345 a second while a
# backlog is registered) costs the relay a read, a produce request, a wait for the broker and a mark, and each
# reader a fetch and a batch transaction, for that one event.
ROUTINE_ROUND_SPACING_S = 0.01
# How often a relay waiting for a commit looks whether it was asked to stop (a stop never waits a whole poll).
STOP_CHECK_S = 1.0
# A commit writes its frames to the log (which wakes us) before it makes them visible. When the woken relay
# looks in between, which it often does on a busy machine (the wake preempts the writer), the commit shows only
# a moment later and writes nothing more to wait for: look again after these pauses before waiting for the
# next write. Without them such a commit waited for the next one, ~200 ms at 5 cases/s.
WAL_RECHECKS_S = (0.0005, 0.002, 0.008)
_MARK_SENT = (update(outbox).where(outbox.c.id.in_(bindparam("ids", expanding=True)))
              .values(sent_at=bindparam("now")))
# On SQLite a busy worker holds the write lock nearly all the time, one batch after another: a relay that waited
# for it to mark rows sent held back the rows committed meanwhile (an emergency's among them) for a batch or more.
# It waits this long for the lock, publishes on, and marks those rows with a later batch; only once rows have
# waited MARK_WITHIN_S to be marked does it wait for the lock as long as any writer does.
MARK_LOCK_WAIT_S = 0.002
MARK_WITHIN_S = 1.0


class Sends:
    """Messages handed to a producer, then waited for together: wait() raises unless the broker has
    acknowledged every one (what was not is sent again by the caller's next attempt)."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.failures: list[Any] = []

    def send(self, topic: str, key: bytes | None, value: bytes,
             headers: list[tuple[str, str | bytes | None]] | None = None) -> None:
        self.producer.produce(topic, key=key, value=value, headers=headers or [], on_delivery=self._delivered)

    def _delivered(self, error: Any, _message: Any) -> None:
        if error is not None:
            self.failures.append(error)

    def wait(self, timeout_s: float = SEND_TIMEOUT_S) -> None:
        remaining = self.producer.flush(timeout_s)
        if self.failures:
            raise KafkaException(self.failures[0])
        if remaining:
            raise KafkaException(f"{remaining} messages not acknowledged within {timeout_s:g} s")


class CommitWaiter:
    """Blocks until another process commits to the database, or the timeout passes.

    On SQLite `connection` is the one it watches: the relay reads and marks rows on it, because SQLite's
    data_version changes only for another connection's commit, so the relay's own marking does not wake it
    for an empty round. (On PostgreSQL only writers NOTIFY; `connection` is None.)"""

    def __init__(self, engine: Engine, schema: str | None) -> None:
        self.engine = engine
        self._pg: Any = None
        self._sqlite: Any = None
        self.connection: Connection | None = None
        self._wal: INotify | None = None
        self._version: int | None = None
        if is_postgres(engine):
            import psycopg

            url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._pg = psycopg.connect(url, autocommit=True)
            self._pg.execute(f'LISTEN "{outbox_channel(schema)}"')
            return
        self.connection = engine.connect()
        self._sqlite = self.connection.connection.dbapi_connection
        self._version = self._data_version()  # also opens the write-ahead log this connection then keeps
        wal = f"{engine.url.database}-wal"
        if os.path.exists(wal):
            # Every commit appends to the log: the kernel wakes us then, instead of a poll every few ms.
            self._wal = INotify()
            self._wal.add_watch(wal, inotify_flags.MODIFY)

    def wait(self, timeout: float, stopping: Stopping | None = None, routine_from: float = 0.0) -> None:
        """Until a commit with a row to publish (a routine row: not before `routine_from`, a time.monotonic()),
        the timeout, or (checked every STOP_CHECK_S) `stopping` is set."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0 and not (stopping is not None and stopping.is_set()):
            if self._woken_within(min(left, STOP_CHECK_S), routine_from):
                return

    def _woken_within(self, timeout: float, routine_from: float = 0.0) -> bool:
        """True once a commit left a row to publish: a priority lane's at once, a routine one at `routine_from`."""
        if self._pg is not None:
            return self._notified_within(timeout, routine_from)
        deadline = time.monotonic() + timeout
        rechecks: list[float] = []
        routine = False  # a routine row waits for routine_from
        while (left := deadline - (now := time.monotonic())) > 0:
            if routine and now >= routine_from:
                return True
            version = self._data_version()
            if version != self._version:
                self._version = version
                # Most commits (a worker's inbox rows, the api's reads) wrote no outbox row: a plain query or two
                # here instead of the relay's round. Read after the version: a later commit changes it again.
                if now >= routine_from:
                    if self._any_pending():
                        return True
                elif self._urgent_pending():
                    return True
                else:
                    routine = routine or self._any_pending()
                continue
            wait_s = min(left, routine_from - now) if routine else left
            if self._wal is None:
                time.sleep(min(0.002, wait_s))
            elif rechecks:
                time.sleep(min(rechecks.pop(0), wait_s))
            elif self._wal.read(timeout=int(wait_s * 1000) + 1):  # events since the check are queued: none lost
                rechecks = list(WAL_RECHECKS_S)
        return routine

    def _notified_within(self, timeout: float, routine_from: float) -> bool:
        """PostgreSQL: a writer's NOTIFY says which lane its rows are for (unit_of_work.URGENT_PAYLOAD)."""
        deadline = time.monotonic() + timeout
        routine = False
        while (left := deadline - (now := time.monotonic())) > 0:
            if routine and now >= routine_from:
                return True
            ready, _, _ = select_module.select([self._pg.fileno()], [], [],
                                               min(left, routine_from - now) if routine else left)
            if ready:
                lanes = {n.payload for n in self._pg.notifies(timeout=0, stop_after=1000)}
                if URGENT_PAYLOAD in lanes or time.monotonic() >= routine_from:
                    return True
                routine = routine or bool(lanes)
        return routine

    def _data_version(self) -> int:
        return int(self._sqlite_query("PRAGMA data_version")[0])

    def _any_pending(self) -> bool:
        return self._sqlite_query(_ANY_PENDING_SQLITE) is not None

    def _urgent_pending(self) -> bool:
        return self._sqlite_query(_URGENT_PENDING_SQLITE) is not None

    def _sqlite_query(self, sql: str) -> Any:
        cursor = self._sqlite.cursor()
        try:
            return cursor.execute(sql).fetchone()
        finally:
            cursor.close()

    def close(self) -> None:
        if self._wal is not None:
            self._wal.close()
        if self._pg is not None:
            self._pg.close()
        if self.connection is not None:
            self.connection.close()


class Relay:
    def __init__(self, engine: Engine, producer: Producer, schema: str | None = None,
                 batch_size: int = 500, poll_interval_s: float = 1.0, lease: RelayLease | None = None) -> None:
        self.engine = engine
        self.lease = lease  # None: this relay publishes unconditionally (a test's only relay)
        self.producer = producer
        self.schema = schema
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.stopping = Stopping()
        # Built once: the same statement object keeps SQLAlchemy's cache key (no rebuild per round). One bound
        # parameter per urgent topic rather than an IN list: a list is re-rendered at every execution.
        urgent = or_(false(), *(outbox.c.topic == name for name in URGENT_TOPICS))
        # The priority lanes' rows first, in one statement: an emergency is not queued behind a normal backlog.
        self._pending = _PENDING.order_by(case((urgent, 0), else_=1), outbox.c.id).limit(bindparam("limit"))
        self._unmarked: list[int] = []  # sent and acknowledged, not yet marked sent (SQLite's lock was busy)
        self._unmarked_since = 0.0

    def publish_pending(self, conn: Connection | None = None) -> int:
        """Publishes one batch of unsent rows in id order; returns how many were sent. With a lease, raises
        LeaseLost instead of marking rows sent once another relay holds it. `conn`: where to read and mark
        (the commit waiter's, on SQLite); else a connection of the engine's for this batch."""
        if self.lease is not None and self.lease.remaining_s() <= 0:
            raise LeaseLost("no relay lease held")
        if conn is None:
            with self.engine.connect() as own:
                return self._publish(own)
        return self._publish(conn)

    def _publish(self, conn: Connection) -> int:
        # Order is kept where Kafka keeps it, within each topic's partitions.
        conn.execution_options(**{READ_ONLY: True})
        unmarked = set(self._unmarked)
        rows = [row for row in conn.execute(self._pending, {"limit": self.batch_size + len(unmarked)})
                if row.id not in unmarked][:self.batch_size]
        conn.rollback()
        if not rows:
            if unmarked:
                self._mark(conn)
            return 0
        sends = Sends(self.producer)
        if exporting():
            for row in rows:
                _send_in_span(sends, row)
        else:  # no span to make: the writer's own context goes on as the record's traceparent
            for row in rows:
                sends.send(row.topic, row.key.encode(), row.value, [("traceparent", row.traceparent)])
        # Raises if any send failed: the rows stay unsent and are retried. Never waits beyond the lease.
        sends.wait(SEND_TIMEOUT_S if self.lease is None else min(SEND_TIMEOUT_S, self.lease.remaining_s()))
        crash_point("relay.after_send")  # sent but not yet marked sent: they will be sent again
        for (topic, event_type), produced in Counter((r.topic, r.event_type) for r in rows).items():
            metrics.produced(topic, event_type).inc(produced)
        if not self._unmarked:
            self._unmarked_since = time.monotonic()
        self._unmarked.extend(r.id for r in rows)
        self._mark(conn)
        return len(rows)

    def _mark(self, conn: Connection, wait: bool = False) -> None:
        """Marks the rows sent so far: at once if the write lock is free (or on PostgreSQL), else with a later
        batch (see MARK_LOCK_WAIT_S). Rows never marked (a crash, a lost lease) are sent again: consumers' inboxes
        make that a no-op."""
        wait = wait or time.monotonic() - self._unmarked_since >= MARK_WITHIN_S
        conn.execution_options(**{READ_ONLY: False, LOCK_WAIT_S: None if wait else MARK_LOCK_WAIT_S})
        try:
            with conn.begin():
                if self.lease is not None:
                    self.lease.keep_within(conn)  # still ours, or nothing is marked (LeaseLost)
                conn.execute(_MARK_SENT, {"ids": self._unmarked, "now": system_clock()})
        except WriteLockBusy:
            return
        except LeaseLost:
            self._unmarked = []  # the new holder sends them again
            raise
        finally:
            conn.execution_options(**{LOCK_WAIT_S: None})
        self._unmarked = []

    def _mark_at_stop(self, waiter: CommitWaiter) -> None:
        try:
            if waiter.connection is not None:
                self._mark(waiter.connection, wait=True)
        except Exception:  # e.g. the database away: those rows are sent again after the restart, no-ops
            log.warning("rows sent but not marked sent at stop", extra={"fields": {"rows": len(self._unmarked)}})

    def _leading(self) -> bool:
        """True while this relay may publish: renews the lease when a third of it has passed, or takes it."""
        if self.lease is None:
            return True
        return not self.lease.renewal_due() or self.lease.acquire()

    def backlog(self) -> int:
        with read_connection(self.engine) as conn:
            return int(conn.execute(select(func.count()).where(outbox.c.sent_at.is_(None))).scalar_one())

    def run(self) -> None:
        waiter: CommitWaiter | None = None
        log.info("relay started")
        try:
            while not self.stopping.is_set():
                metrics.heartbeat()
                try:
                    if not self._leading():
                        assert self.lease is not None
                        self.stopping.wait(self.lease.renew_every_s)  # standby: ask again later
                        continue
                    # The waiter's connection dies with the database; a new one is opened once it is back.
                    if waiter is None:
                        waiter = CommitWaiter(self.engine, self.schema)
                    began = time.monotonic()
                    while (sent := self.publish_pending(waiter.connection)) == self.batch_size and self._leading():
                        began = time.monotonic()
                    renew_s = self.lease.renew_every_s if self.lease is not None else self.poll_interval_s
                    waiter.wait(min(self.poll_interval_s, renew_s), self.stopping,
                                routine_from=began + ROUTINE_ROUND_SPACING_S if sent else 0.0)
                except LeaseLost:
                    log.warning("relay lease lost mid-batch; standing by (its rows go out from the new holder)")
                except Exception:
                    log.exception("relay failed (database or broker unavailable?); retrying")
                    if waiter is not None:
                        _close_quietly(waiter)
                        waiter = None
                    self.stopping.wait(1.0)
        finally:
            if waiter is not None:
                if self._unmarked:
                    self._mark_at_stop(waiter)
                _close_quietly(waiter)
            self.producer.flush(10)
            if self.lease is not None:
                try:
                    self.lease.release()
                except Exception:
                    log.warning("could not hand the relay lease back; it runs out by itself", exc_info=True)
            log.info("relay stopped")

    def stop_on_signals(self) -> None:
        self.stopping.on_signals()


def _send_in_span(sends: Sends, row: Any) -> None:
    """Sends the row in a producer span, a child of the writer's."""
    token = otel_context.attach(context_from_traceparent(row.traceparent))
    try:
        with tracer.start_as_current_span(f"{row.topic} publish", kind=SpanKind.PRODUCER) as span:
            if span.is_recording():  # not when the sampler drops it: spare parsing the envelope
                span.set_attributes({"messaging.system": "kafka", "messaging.destination.name": row.topic,
                                     "refnet.event_type": row.event_type,
                                     **metrics.subject_ids(EventEnvelope.FromString(row.value).subject)})
            sends.send(row.topic, row.key.encode(), row.value, [("traceparent", current_traceparent().encode())])
    finally:
        otel_context.detach(token)


def _close_quietly(waiter: CommitWaiter) -> None:
    try:
        waiter.close()
    except Exception:
        log.debug("closing a broken commit waiter failed", exc_info=True)
