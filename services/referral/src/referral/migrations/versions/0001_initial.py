"""referral: providers and referrals; outbox and inbox.

Revision ID: 0001

The tables exactly as first defined (frozen here, so later changes to adapters/tables.py never
change what this revision does; they get revisions of their own).
"""

from alembic import op
from sqlalchemy import Boolean, Column, DateTime, MetaData, String, Table, UniqueConstraint

from refnet_platform.tables import create_platform_tables

revision = "0001"
down_revision = None

metadata = MetaData()

Table(
    "providers", metadata,
    Column("provider_id", String(100), primary_key=True),
    Column("name", String(300), nullable=False),
    Column("sector", String(40), nullable=False),
    Column("service_type", String(40), nullable=False, index=True),
    Column("province_code", String(10), nullable=False, index=True),
    Column("commune_code", String(10), nullable=False),
    Column("public_contact", String(200), nullable=False),
    Column("open_24_7", Boolean, nullable=False),
    Column("shelter_id", String(100), nullable=False, default=""),
)

Table(
    "referrals", metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False, index=True),
    Column("need_id", String(36), nullable=False),
    Column("service_type", String(40), nullable=False),
    Column("provider_id", String(100), nullable=False, index=True),
    Column("province_code", String(10), nullable=False),
    Column("status", String(20), nullable=False),
    Column("emergency", Boolean, nullable=False),
    Column("risk_level", String(20), nullable=False),
    Column("case_worker_id", String(100), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("shelter_id", String(100), nullable=False, default=""),
    Column("reason", String(100), nullable=False, default=""),
    UniqueConstraint("need_id", "provider_id", name="uq_referral_need_provider"),
)


def upgrade() -> None:
    metadata.create_all(op.get_bind())
    create_platform_tables(op.get_bind())


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
