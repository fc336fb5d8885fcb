"""The old home of the database plumbing, kept as a re-export for callers not yet moved (services/web,
services/ops, bench): import from refnet_platform.engine, .tables, .unit_of_work and .migrations instead."""

from refnet_platform.engine import READ_ONLY, SQLITE_LOCK_WAIT_S, is_postgres, make_engine, read_connection
from refnet_platform.migrations import migrate, run_migrations_online
from refnet_platform.tables import create_platform_tables, inbox, outbox, outbox_channel, platform_metadata
from refnet_platform.unit_of_work import BatchTransaction, Duplicate, UnitOfWork, crash_point

__all__ = ["READ_ONLY", "SQLITE_LOCK_WAIT_S", "BatchTransaction", "Duplicate", "UnitOfWork", "crash_point",
           "create_platform_tables", "inbox", "is_postgres", "make_engine", "migrate", "outbox", "outbox_channel",
           "platform_metadata", "read_connection", "run_migrations_online"]
