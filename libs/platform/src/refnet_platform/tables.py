"""The tables every service has beside its own: the outbox (what the relay publishes) and the inbox (what the
worker has handled), written by the unit of work in the service's transaction; the relay's lease."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, DateTime, Integer, LargeBinary, MetaData, String, Table

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


# One row per relay lease (see relay_lease): which relay of the service may publish, and until when.
relay_lease = Table(
    "relay_lease",
    platform_metadata,
    Column("name", String(100), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)


def outbox_channel(schema: str | None) -> str:
    """The PostgreSQL NOTIFY channel a commit that wrote outbox rows wakes the relay on."""
    return f"outbox_{schema or 'public'}"


def create_platform_tables(connection: Connection) -> None:
    """For each service's first migration: the platform's tables as defined above (a later migration that adds
    one of them creates it only where it is missing)."""
    platform_metadata.create_all(connection)
