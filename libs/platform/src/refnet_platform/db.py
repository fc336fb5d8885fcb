"""Engines, the outbox and inbox tables every service has, the unit of work and migrations on start."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Transaction,
    bindparam,
    create_engine,
    event,
    insert,
    select,
    text,
)

from refnet_platform.clock import system_clock
from refnet_platform.context import current_delivery
from refnet_platform.envelope import OutgoingEvent, wrap
from refnet_platform.telemetry import current_traceparent

log = logging.getLogger(__name__)

platform_metadata = MetaData()

outbox = Table(
    "outbox",
    platform_metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("topic", String(200), nullable=False),
    Column("key", String(200), nullable=False),
    Column("event_type", String(200), nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("traceparent", String(55), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True, index=True),
)

inbox = Table(
    "inbox",
    platform_metadata,
    Column("consumer", String(100), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False),
)


# Built once: a constant statement executed with parameters skips SQLAlchemy's per-call construction.
_INSERT_OUTBOX = insert(outbox)
# A repeat shows as no row inserted: no savepoint (two more statements) around the insert to catch it.
_INSERT_INBOX = text(
    "INSERT INTO inbox (consumer, event_id, processed_at) VALUES (:consumer, :event_id, :processed_at) "
    "ON CONFLICT (consumer, event_id) DO NOTHING",
).bindparams(bindparam("processed_at", type_=inbox.c.processed_at.type))
_INBOX_SEEN = select(inbox.c.event_id).where(inbox.c.consumer == bindparam("consumer"),
                                             inbox.c.event_id == bindparam("event_id"))


# The platform's own rows (outbox, inbox) are stamped by the system clock; utcnow is its old name, kept for callers.
utcnow = system_clock


def make_engine(url: str, schema: str | None = None, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets the relay read while the api writes; the lock waits instead of failing.
            dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            if conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN")  # WAL: a reader never waits for, nor blocks, the writer
                return
            # Take the write lock up front so read-then-write transactions never fail to upgrade.
            _begin_immediate(conn.connection.dbapi_connection)

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    connect_args = {"options": f"-csearch_path={schema}"} if schema else {}
    return create_engine(url, connect_args=connect_args, pool_size=pool_size, max_overflow=pool_size,
                         pool_pre_ping=True)


# Connection execution option: the transaction only reads (SQLite then does not take the write lock).
READ_ONLY = "refnet_read_only"

SQLITE_LOCK_WAIT_S = 30.0


def read_connection(engine: Engine) -> Connection:
    """A connection for reading only: on SQLite it never takes (nor waits for) the write lock."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def _begin_immediate(dbapi_conn: Any) -> None:
    """BEGIN IMMEDIATE, retried every millisecond or less while another writer holds the lock. SQLite's own
    busy handler sleeps ever longer (up to 100 ms a time), so a writer could sleep on long after the lock was
    free: that was most of intake's RegisterCase p99 when its api, worker and relay wrote at once."""
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=0")
        deadline = time.monotonic() + SQLITE_LOCK_WAIT_S
        delay = 0.0001
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.001)
    finally:
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_LOCK_WAIT_S * 1000)}")
        cursor.close()


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def outbox_channel(schema: str | None) -> str:
    return f"outbox_{schema or 'public'}"


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


def create_platform_tables(connection: Connection) -> None:
    """For each service's first migration: the outbox and inbox as defined above."""
    platform_metadata.create_all(connection)


def migrate(engine: Engine, script_location: Path, schema: str | None = None) -> None:
    """Brings the service's database to head. Safe when api, worker and relay start together."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    if is_postgres(engine):
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema or "public"}"'))
        with engine.connect() as conn:
            lock = zlib.crc32(f"migrate:{schema}".encode())
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock})
            try:
                _upgrade(config, conn)
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock})
                conn.commit()
        return
    database = engine.url.database or ""
    lock_path = Path(f"{database}.migrate.lock") if database and database != ":memory:" else None
    with _file_lock(lock_path), engine.begin() as conn:
        _upgrade(config, conn)


def _upgrade(config: Config, conn: Connection) -> None:
    current = MigrationContext.configure(conn).get_current_revision()
    if current and not _known(config, current):
        # The database is ahead of this code: a rollback. Older code runs on the newer schema, which
        # migrations keep additive; it must not crash-loop trying to downgrade.
        log.warning("database is at a newer revision than this code; not migrating",
                    extra={"fields": {"revision": current}})
        return
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


def _known(config: Config, revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(config).get_revision(revision) is not None
    except CommandError:
        return False


@contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    """Serialises migrations of one SQLite file across processes; nothing to lock for :memory:."""
    if path is None:
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_migrations_online(context: Any) -> None:
    """The whole of every service's alembic env.py: run on the connection migrate() passes in."""
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()

