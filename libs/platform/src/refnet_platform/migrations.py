"""Migrations on start: each process brings its service's database to head with alembic, one at a time (a
PostgreSQL advisory lock, or a file lock beside the SQLite file), and leaves a newer database alone.

On PostgreSQL with separate roles (refnet_platform.db_roles), the migration role (MIGRATION_DATABASE_URL)
migrates and then grants the service's runtime role (the user of DATABASE_URL) its DML; a process running
as that role alone finds its schema at head and changes nothing (it may not: the migration Job runs first)."""

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
from sqlalchemy.exc import ProgrammingError

from refnet_platform.db_roles import grant_service_role, role_exists
from refnet_platform.engine import is_postgres

log = logging.getLogger(__name__)


def migrate(engine: Engine, script_location: Path, schema: str | None = None,
            service_role: str | None = None) -> None:
    """Brings the service's database to head. Safe when api, worker and relay start together. On PostgreSQL,
    `service_role` (the role the service's processes run as, when not this engine's) is then granted DML on
    the schema (refnet_platform.db_roles)."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    if is_postgres(engine):
        name = schema or "public"
        with engine.begin() as conn:
            # CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists: a service
            # role has none, and needs none once the migration role has made it.
            if not conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": name}).first():
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{name}"'))
        with engine.connect() as conn:
            lock = zlib.crc32(f"migrate:{schema}".encode())
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock})
            try:
                _upgrade(config, conn)
                if service_role and service_role != engine.url.username:
                    _grant(conn, name, service_role)
                conn.commit()
            except BaseException:
                conn.rollback()  # then the unlock below runs outside the failed transaction
                raise
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
    if current is not None and current == ScriptDirectory.from_config(config).get_current_head():
        return  # nothing to do, and nothing written: a service role may only read alembic_version
    config.attributes["connection"] = conn
    try:
        command.upgrade(config, "head")
    except ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42501":  # insufficient_privilege
            raise
        raise RuntimeError(
            f"the database is at revision {current or 'none'} and this role ({conn.engine.url.username}) may not "
            "migrate it: run the migration Job (--migrate-only with MIGRATION_DATABASE_URL) first") from exc


def _grant(conn: Connection, schema: str, role: str) -> None:
    if not role_exists(conn, role):
        raise RuntimeError(f"role {role} (the user of DATABASE_URL) does not exist: create the roles first "
                           "(deploy/k8s/README.md, \"PostgreSQL roles\")")
    grant_service_role(conn, schema, role)


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
