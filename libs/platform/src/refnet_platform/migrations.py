"""Migrations on start: each process brings its service's database to head with alembic, one at a time (a
PostgreSQL advisory lock, or a file lock beside the SQLite file), and leaves a newer database alone."""

from __future__ import annotations

import fcntl
import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text

from refnet_platform.engine import is_postgres

log = logging.getLogger(__name__)


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
