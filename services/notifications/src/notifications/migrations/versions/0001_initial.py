"""notifications: notices and their delivery; outbox and inbox.

Revision ID: 0001

The tables exactly as first defined (frozen here, so later changes to adapters/tables.py never change what
this revision does; they get revisions of their own).
"""

from alembic import op
from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, UniqueConstraint

from refnet_platform.tables import create_platform_tables

revision = "0001"
down_revision = None

metadata = MetaData()

Table(
    "notices", metadata,
    Column("notice_id", String(36), primary_key=True),
    Column("source_event_id", String(36), nullable=False),
    Column("recipient_id", String(100), nullable=False, index=True),
    Column("channel", String(20), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("referral_id", String(36), nullable=False),
    Column("case_id", String(36), nullable=False, index=True),
    Column("province_code", String(10), nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("source_event_id", "recipient_id", "channel", name="uq_notice_once"),
)


def upgrade() -> None:
    metadata.create_all(op.get_bind())
    create_platform_tables(op.get_bind())


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
