"""The unit of work: the service's repositories, the outbox and the inbox commit in one transaction; a batch
transaction that many units of work share (the consumer's fast path); and the crash points `make chaos` uses."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine, Transaction, bindparam, insert, select, text

from refnet_platform.clock import system_clock
from refnet_platform.context import current_delivery
from refnet_platform.engine import is_postgres, read_connection
from refnet_platform.envelope import OutgoingEvent, wrap
from refnet_platform.tables import inbox, outbox, outbox_channel
from refnet_platform.telemetry import current_traceparent

# Built once: a constant statement executed with parameters skips SQLAlchemy's per-call construction.
_INSERT_OUTBOX = insert(outbox)
# A repeat shows as no row inserted: no savepoint (two more statements) around the insert to catch it.
_INSERT_INBOX = text(
    "INSERT INTO inbox (consumer, event_id, processed_at) VALUES (:consumer, :event_id, :processed_at) "
    "ON CONFLICT (consumer, event_id) DO NOTHING",
).bindparams(bindparam("processed_at", type_=inbox.c.processed_at.type))
_INBOX_SEEN = select(inbox.c.event_id).where(inbox.c.consumer == bindparam("consumer"),
                                             inbox.c.event_id == bindparam("event_id"))


def crash_point(name: str) -> None:
    """For `make chaos` and crash tests only: with REFNET_CRASH_AT=<name> in its environment the process dies
    here, as if killed (exit 137). Points: consumer.after_db_commit, relay.after_send, intake_keys.mid_batch."""
    if os.environ.get("REFNET_CRASH_AT") == name:
        os._exit(137)


class Duplicate(Exception):
    """This consumer already handled the record: the redelivery is a no-op."""


class BatchTransaction:
    """One transaction for many units of work: while it is open in this thread, each UnitOfWork on the
    same engine is a SAVEPOINT in it. The consumer handles a poll's records this way: one commit (and one
    write-lock turn) for the batch instead of one per record."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.connection: Connection
        self._after_commit: list[Callable[[], None]] = []

    def __enter__(self) -> Self:
        self.connection = self.engine.connect()  # its transaction begins with the first unit of work
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
            self._after_commit = []

    def commit(self) -> None:
        """Commits what the batch's units of work committed so far; the next unit of work begins anew."""
        self.connection.commit()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()


_current_batch: ContextVar[BatchTransaction | None] = ContextVar("refnet_batch", default=None)


class UnitOfWork:
    """One transaction: the service's repositories, the outbox and the inbox commit together. Inside a
    BatchTransaction on the same engine it is a savepoint of the batch's transaction instead."""

    def __init__(self, engine: Engine, source: str, schema: str | None = None) -> None:
        self.engine = engine
        self.source = source
        self.schema = schema
        self.connection: Connection
        self._pending: list[OutgoingEvent] = []
        self._batch: BatchTransaction | None = None
        self._savepoint: Transaction | None = None
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
            self._savepoint = self.connection.begin_nested()
        else:
            self.connection = read_connection(self.engine) if self._read_only else self.engine.connect()
            self.connection.begin()
        self._pending = []
        self._after_commit = []
        delivery = current_delivery.get()
        if delivery and self._already_processed(delivery.consumer, delivery.event_id):
            self._close()
            raise Duplicate(delivery.event_id)
        self.open_repositories(self.connection)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close()

    def _close(self) -> None:
        """Rolls back what was not committed; safe to call twice."""
        if self._batch is not None:
            if self._savepoint is not None and self._savepoint.is_active:
                self._savepoint.rollback()
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
        traceparent = current_traceparent()
        rows = []
        for pending in self._pending:
            envelope = wrap(pending, self.source)
            rows.append(dict(event_id=envelope.id, topic=pending.topic, key=pending.key, event_type=envelope.type,
                             value=envelope.SerializeToString(), traceparent=traceparent, created_at=system_clock()))
        if rows:
            conn.execute(_INSERT_OUTBOX, rows)
        delivery = current_delivery.get()
        if delivery:
            recorded = conn.execute(_INSERT_INBOX, dict(consumer=delivery.consumer, event_id=delivery.event_id,
                                                        processed_at=system_clock()))
            if recorded.rowcount == 0:  # handled meanwhile by another consumer of the group (a rebalance)
                self._close()
                raise Duplicate(delivery.event_id)
        if self._pending and is_postgres(self.engine):
            # Delivered on commit: wakes the relay at once instead of on its next poll.
            conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": outbox_channel(self.schema)})
        self._pending = []
        callbacks, self._after_commit = self._after_commit, []
        if self._savepoint is not None and self._batch is not None:
            self._savepoint.commit()
            self._batch._after_commit.extend(callbacks)
            return
        conn.commit()
        for callback in callbacks:
            callback()

    def _already_processed(self, consumer: str, event_id: str) -> bool:
        row = self.connection.execute(_INBOX_SEEN, {"consumer": consumer, "event_id": event_id}).first()
        return row is not None
