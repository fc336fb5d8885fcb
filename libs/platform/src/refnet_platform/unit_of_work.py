"""The unit of work: the service's repositories, the outbox and the inbox commit in one transaction; a batch
transaction that many units of work share (the consumer's fast path); and the crash points `make chaos` uses."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from functools import cache
from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine, text

from refnet_platform.clock import system_clock
from refnet_platform.context import current_delivery
from refnet_platform.engine import is_postgres, read_connection
from refnet_platform.envelope import OutgoingEvent, wrap
from refnet_platform.prepared import PreparedStatement, prepared_insert
from refnet_platform.tables import inbox, outbox, outbox_channel
from refnet_platform.telemetry import current_traceparent
from refnet_platform.topics import urgent

# Every unit of work writes its inbox row, and its outbox rows if it publishes: sent as the database's own SQL
# (refnet_platform.prepared), skipping SQLAlchemy's per-execute work.
_INSERT_OUTBOX = prepared_insert(outbox, ["event_id", "topic", "key", "event_type", "value", "traceparent",
                                          "created_at"])
# A repeat shows as no row inserted: no savepoint (two more statements) around the insert to catch it.
_INSERT_INBOX = prepared_insert(inbox, conflict="ON CONFLICT (consumer, event_id) DO NOTHING")
# A batch's inbox rows, checked as the batch began: a row another consumer of the group wrote since (PostgreSQL,
# after a rebalance) fails the batch's commit on the unique key, and the batch is undone whole.
_RECORD_INBOX = prepared_insert(inbox)
_NOTIFY = PreparedStatement(text("SELECT pg_notify(:channel, :lane)"))
# The NOTIFY payload of a commit with a row for a priority lane: its relay publishes at once (outbox.CommitWaiter).
URGENT_PAYLOAD = "urgent"
_INBOX_SEEN = PreparedStatement(text("SELECT event_id FROM inbox WHERE consumer = :consumer AND event_id = :event_id"))
# Bound parameters per inbox query: well under every database's limit.
_INBOX_CHUNK = 500


@cache
def _inbox_seen_any(count: int) -> PreparedStatement:
    """Which of `count` event ids (:e0, :e1...) the consumer handled: a statement for each count a poll brings
    (at most _INBOX_CHUNK), as SQLAlchemy's expanding IN cost twice as much (25 us more for a poll of one)."""
    return PreparedStatement(text("SELECT event_id FROM inbox WHERE consumer = :consumer AND event_id IN ("
                                  + ", ".join(f":e{i}" for i in range(count)) + ")"))


def crash_point(name: str) -> None:
    """For `make chaos` and crash tests only: with REFNET_CRASH_AT=<name> in its environment the process dies
    here, as if killed (exit 137). Points: consumer.after_db_commit, relay.after_send, intake_keys.mid_batch."""
    if os.environ.get("REFNET_CRASH_AT") == name:
        os._exit(137)


class Duplicate(Exception):
    """This consumer already handled the record: the redelivery is a no-op."""


class BatchSpoiled(Exception):
    """A unit of work in the batch ended without committing: what it wrote cannot be undone alone, so the
    batch must be rolled back whole (and its other units of work done again)."""


class BatchTransaction:
    """One transaction for many units of work: while it is open in this thread, each UnitOfWork on the same
    engine works in the batch's transaction, and its commit only stages its outbox and inbox rows, written
    together when the batch commits. No savepoint each (two statements per unit of work): a unit of work that
    ends without committing spoils the batch instead (see BatchSpoiled), which the caller rolls back and redoes
    without it. The consumer handles a poll's records this way: one commit, one write-lock turn and one inbox
    query for the batch instead of one each per record."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.connection: Connection
        self.spoiled = False
        self._outbox_rows: list[dict[str, object]] = []
        self._inbox_rows: list[dict[str, object]] = []
        self._checked: set[tuple[str, str]] = set()  # deliveries whose inbox rows were looked up
        self._seen: set[tuple[str, str]] = set()  # ...and found, or staged by this batch
        self._notify: dict[str, str] = {}  # NOTIFY channel: payload (URGENT_PAYLOAD if any row is urgent)
        self._after_commit: list[Callable[[], None]] = []

    def __enter__(self) -> Self:
        self.connection = self.engine.connect()  # its transaction begins with the first statement
        self._token = _current_batch.set(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _current_batch.reset(self._token)
        try:
            if self.connection.in_transaction():
                self.connection.rollback()
        finally:
            self.connection.close()
            self._reset()

    def look_up(self, consumer: str, event_ids: Sequence[str]) -> None:
        """Finds which of these records `consumer` handled before (see handled): one query for them all, in the
        batch's transaction (on SQLite under the write lock: no other writer records one before this commits)."""
        for start in range(0, len(event_ids), _INBOX_CHUNK):
            chunk = event_ids[start:start + _INBOX_CHUNK]
            values = {"consumer": consumer, **{f"e{i}": event_id for i, event_id in enumerate(chunk)}}
            rows = _inbox_seen_any(len(chunk)).execute(self.connection, values).scalars()
            self._seen.update((consumer, event_id) for event_id in rows)
        self._checked.update((consumer, event_id) for event_id in event_ids)

    def handled(self, consumer: str, event_id: str) -> bool | None:
        """Whether `consumer` handled the record, as looked up or staged in this batch; None if not looked up."""
        key = (consumer, event_id)
        if key in self._seen:
            return True
        return False if key in self._checked else None

    def commit(self) -> None:
        """Writes the staged outbox and inbox rows and commits; the next unit of work begins anew. Raises
        BatchSpoiled (committing nothing) if a unit of work ended uncommitted."""
        if self.spoiled:
            raise BatchSpoiled("a unit of work in the batch ended without committing")
        conn = self.connection
        if self._outbox_rows:
            _INSERT_OUTBOX.execute(conn, self._outbox_rows)
        if self._inbox_rows:
            _RECORD_INBOX.execute(conn, self._inbox_rows)
        for channel, lane in self._notify.items():  # delivered on commit: wakes the relay
            _NOTIFY.execute(conn, {"channel": channel, "lane": lane})
        conn.commit()
        callbacks = self._after_commit
        self._reset()
        for callback in callbacks:
            callback()

    def _reset(self) -> None:
        self.spoiled = False
        self._outbox_rows, self._inbox_rows, self._after_commit = [], [], []
        self._checked, self._seen, self._notify = set(), set(), {}


_current_batch: ContextVar[BatchTransaction | None] = ContextVar("refnet_batch", default=None)


class UnitOfWork:
    """One transaction: the service's repositories, the outbox and the inbox commit together. Inside a
    BatchTransaction on the same engine it is part of the batch's transaction instead."""

    def __init__(self, engine: Engine, source: str, schema: str | None = None) -> None:
        self.engine = engine
        self.source = source
        self.schema = schema
        self.connection: Connection
        self._pending: list[OutgoingEvent] = []
        self._batch: BatchTransaction | None = None
        self._committed = False
        self._after_commit: list[Callable[[], None]] = []
        self._read_only = False

    def reading(self) -> Self:
        """For work that only reads: on SQLite it then neither takes nor waits for the write lock."""
        self._read_only = True
        return self

    def open_repositories(self, connection: Connection) -> None:
        """Services override this to attach their repositories to the connection."""

    def __enter__(self) -> Self:
        batch = _current_batch.get()
        self._batch = batch if batch is not None and batch.engine is self.engine else None
        if self._batch is not None:
            self.connection = self._batch.connection
        else:
            self.connection = read_connection(self.engine) if self._read_only else self.engine.connect()
            self.connection.begin()
        self._pending = []
        self._after_commit = []
        self._committed = False
        delivery = current_delivery.get()
        if delivery and self._already_processed(delivery.consumer, delivery.event_id):
            self._committed = True  # nothing written: nothing to undo
            self._close()
            raise Duplicate(delivery.event_id)
        self.open_repositories(self.connection)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close()

    def _close(self) -> None:
        """Rolls back what was not committed; safe to call twice. In a batch, work that may have written
        and was not committed spoils the batch (only the whole batch can be rolled back)."""
        if self._batch is not None:
            if not self._committed and not self._read_only:
                self._batch.spoiled = True
            return
        try:
            if self.connection.in_transaction():
                self.connection.rollback()
        finally:
            self.connection.close()

    def publish(self, event: OutgoingEvent) -> None:
        self._pending.append(event)

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Runs `callback` once this work is really committed (in a batch: when the batch commits), e.g. to
        wake a timer that reads what was written; not at all if it is rolled back."""
        self._after_commit.append(callback)

    def commit(self) -> None:
        conn = self.connection
        # Only for events to publish: most records a worker handles publish none.
        traceparent = current_traceparent() if self._pending else ""
        rows = []
        for pending in self._pending:
            envelope = wrap(pending, self.source)
            rows.append(dict(event_id=envelope.id, topic=pending.topic, key=pending.key, event_type=envelope.type,
                             value=envelope.SerializeToString(), traceparent=traceparent, created_at=system_clock()))
        delivery = current_delivery.get()
        batch = self._batch
        if batch is not None:  # staged: written when the batch commits
            batch._outbox_rows.extend(rows)
            if delivery:
                batch._inbox_rows.append(dict(consumer=delivery.consumer, event_id=delivery.event_id,
                                              processed_at=system_clock()))
                batch._seen.add((delivery.consumer, delivery.event_id))
            if rows and is_postgres(self.engine):
                channel = outbox_channel(self.schema)
                if batch._notify.get(channel) != URGENT_PAYLOAD:
                    batch._notify[channel] = _lane(rows)
            batch._after_commit.extend(self._after_commit)
        else:
            if rows:
                _INSERT_OUTBOX.execute(conn, rows)
            if delivery:
                recorded = _INSERT_INBOX.execute(conn, dict(consumer=delivery.consumer, event_id=delivery.event_id,
                                                            processed_at=system_clock()))
                if recorded.rowcount == 0:  # handled meanwhile by another consumer of the group (a rebalance)
                    self._close()
                    raise Duplicate(delivery.event_id)
            if rows and is_postgres(self.engine):
                # Delivered on commit: wakes the relay at once instead of on its next poll.
                _NOTIFY.execute(conn, {"channel": outbox_channel(self.schema), "lane": _lane(rows)})
            conn.commit()
            for callback in self._after_commit:
                callback()
        self._pending = []
        self._after_commit = []
        self._committed = True

    def _already_processed(self, consumer: str, event_id: str) -> bool:
        known = self._batch.handled(consumer, event_id) if self._batch is not None else None
        if known is not None:
            return known
        return _INBOX_SEEN.execute(self.connection, {"consumer": consumer, "event_id": event_id}).first() is not None


def _lane(rows: list[dict[str, object]]) -> str:
    """The NOTIFY payload for a commit's outbox rows."""
    return URGENT_PAYLOAD if any(urgent(str(row["topic"])) for row in rows) else ""
