"""shelter: shelters and reservations; outbox and inbox.

Revision ID: 0001
"""

from alembic import op
from sqlalchemy import CheckConstraint, Column, DateTime, Integer, MetaData, String, Table

from refnet_platform.tables import create_platform_tables

revision = "0001"
down_revision = None

# The tables as this revision first made them (one pool per shelter); 0002 reshapes them.
metadata = MetaData()
Table(
    "shelters", metadata,
    Column("shelter_id", String(100), primary_key=True),
    Column("name", String(300), nullable=False),
    Column("province_code", String(10), nullable=False, index=True),
    Column("commune_code", String(10), nullable=False),
    Column("target_group", String(40), nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    Column("occupied", Integer, nullable=False),
    Column("confirmed_at", DateTime(timezone=True), nullable=False),
    Column("address", String(500), nullable=False),
    CheckConstraint("reserved >= 0 AND occupied >= 0 AND reserved + occupied <= capacity", name="ck_never_overbooked"),
)
Table(
    "reservations", metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("shelter_id", String(100), nullable=False, index=True),
    Column("case_id", String(36), nullable=False),
    Column("province_code", String(10), nullable=False),
    Column("status", String(20), nullable=False),
    Column("hold_until", DateTime(timezone=True), nullable=False),
)


def upgrade() -> None:
    # Frozen here rather than read from adapters/tables.py, which describes the newest shape.
    metadata.create_all(op.get_bind())
    create_platform_tables(op.get_bind())


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
