"""Engines: PostgreSQL with the service's schema, or SQLite in WAL with its write lock taken up front."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, DateTime, Dialect, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, registry, sqlite
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

# Connection execution option: the transaction only reads (SQLite then does not take the write lock).
READ_ONLY = "refnet_read_only"
# Connection execution option: on SQLite, the transaction waits at most this many seconds for the write lock, then
# raises WriteLockBusy (not the SQLITE_LOCK_WAIT_S a writer otherwise waits). PostgreSQL has no such lock.
LOCK_WAIT_S = "refnet_lock_wait_s"

SQLITE_LOCK_WAIT_S = 30.0


def make_engine(url: str, schema: str | None = None, pool_size: int = 10) -> Engine:
    """hide_parameters: a failed statement's error (logged, or a dead letter's reason) never carries the bound
    values, which may be survivors' data; the SQL text alone says what failed."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(_REFNET_SQLITE + url.split(":", 1)[1],
                               connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets the relay read while the api writes; the lock waits instead of failing.
            dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (_SQLiteDialect.do_begin)
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA secure_delete=ON")  # erased data is overwritten in the file, not left in free pages
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "checkin")
        def _forget_options(_dbapi_conn: Any, record: Any) -> None:
            if record is not None:  # the next connection from the pool begins as a writer again
                for name in _BEGIN_OPTIONS:
                    record.info.pop(name, None)

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    connect_args = {"options": f"-csearch_path={schema}"} if schema else {}
    return create_engine(url, connect_args=connect_args, pool_size=pool_size, max_overflow=pool_size,
                         pool_pre_ping=True, hide_parameters=True)


# SQLAlchemy's own text for a datetime on SQLite (sqlite.DATETIME's storage format), with positional fields.
_DATETIME_TEXT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


class _SQLiteDateTime(sqlite.DATETIME):
    """SQLite's DATETIME, stored as the same text and read back the same way, bound with a tuple instead of a
    dict per value: the dict was 5 % of referral-worker's CPU, as every row carries a time or two."""

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        slow = super().bind_processor(dialect)
        if self._storage_format != sqlite.DATETIME._storage_format or slow is None:
            return slow

        def process(value: Any) -> Any:
            if type(value) is datetime:  # dates, None and anything else as SQLAlchemy binds them
                return _DATETIME_TEXT % (value.year, value.month, value.day, value.hour, value.minute, value.second,
                                         value.microsecond)
            return slow(value)

        return process


_BEGIN_OPTIONS = (READ_ONLY, LOCK_WAIT_S)


class _SQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite as refnet opens SQLite: a transaction takes the write lock up front (BEGIN IMMEDIATE) unless the
    connection only reads, and every DateTime column binds through _SQLiteDateTime. Done in the dialect, not in
    a "begin" event: an engine with a connection event dispatches events around every statement, 6 us of the
    22 SQLAlchemy spent on each."""

    supports_statement_cache = True
    colspecs = {**SQLiteDialect_pysqlite.colspecs, DateTime: _SQLiteDateTime}

    def set_connection_execution_options(self, connection: Connection, opts: Mapping[str, Any]) -> None:
        super().set_connection_execution_options(connection, opts)
        # do_begin sees only the DB-API connection: the options go with it until the pool takes it back.
        connection.connection.info.update({name: opts[name] for name in _BEGIN_OPTIONS if name in opts})

    def do_begin(self, dbapi_connection: Any) -> None:
        if dbapi_connection.info.get(READ_ONLY):
            dbapi_connection.driver_connection.execute("BEGIN")  # WAL: a reader never waits for, nor blocks, the writer
            return
        # Take the write lock up front so read-then-write transactions never fail to upgrade.
        _begin_immediate(dbapi_connection.driver_connection, dbapi_connection.info.get(LOCK_WAIT_S))


_REFNET_SQLITE = "sqlite+refnet:"
registry.register("sqlite.refnet", __name__, "_SQLiteDialect")


def read_connection(engine: Engine) -> Connection:
    """A connection for reading only: on SQLite it never takes (nor waits for) the write lock."""
    return engine.connect().execution_options(**{READ_ONLY: True})


class WriteLockBusy(Exception):
    """Another connection held SQLite's write lock for all of the LOCK_WAIT_S this transaction would wait."""


def _begin_immediate(dbapi_conn: Any, wait_s: float | None = None) -> None:
    """BEGIN IMMEDIATE, retried every millisecond or less while another writer holds the lock. SQLite's own
    busy handler sleeps ever longer (up to 100 ms a time), so a writer could sleep on long after the lock was
    free: that was most of intake's RegisterCase p99 when its api, worker and relay wrote at once. `wait_s`
    (LOCK_WAIT_S): wait that long, then raise WriteLockBusy; None: SQLITE_LOCK_WAIT_S, then SQLite's own error."""
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=0")
        deadline = time.monotonic() + (SQLITE_LOCK_WAIT_S if wait_s is None else wait_s)
        delay = 0.0001
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    if wait_s is not None:
                        raise WriteLockBusy(f"the write lock stayed held for {wait_s:g} s") from exc
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.001)
    finally:
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_LOCK_WAIT_S * 1000)}")
        cursor.close()


def is_postgres(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


def upsert_insert(conn: Engine | Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that takes ON CONFLICT (`on_conflict_do_update`, `on_conflict_do_nothing`), in the database's own
    dialect: SQLite and PostgreSQL both have it, spelt alike."""
    return postgresql.insert(table) if is_postgres(conn) else sqlite.insert(table)
