"""intake: cases, needs, per-case keys and encrypted personal data; outbox and inbox.

Revision ID: 0001

The tables exactly as first defined (frozen here, so later changes to adapters/tables.py never change what
this revision does; they get revisions of their own): 0002 adds the case's status, triage and reporting
columns and one need per service per case, 0003 the id of the master key that wrapped each case key.
"""

from alembic import op
from sqlalchemy import JSON, Boolean, Column, DateTime, ForeignKey, Integer, LargeBinary, MetaData, String, Table

from refnet_platform.tables import create_platform_tables

revision = "0001"
down_revision = None

metadata = MetaData()

Table(
    "cases", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("client_request_id", String(100), nullable=False, unique=True),
    Column("province_code", String(10), nullable=False, index=True),
    Column("commune_code", String(10), nullable=False),
    Column("case_types", JSON, nullable=False),
    Column("is_child", Boolean, nullable=False),
    Column("age", Integer, nullable=True),
    Column("sex", String(20), nullable=True),
    Column("risk_level", String(20), nullable=False),
    Column("immediate_danger", Boolean, nullable=False),
    Column("case_worker_id", String(100), nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
)

Table(
    "needs", metadata,
    Column("need_id", String(36), primary_key=True),
    Column("case_id", String(36), ForeignKey("cases.case_id"), nullable=False, index=True),
    Column("service_type", String(40), nullable=False),
    Column("consented", Boolean, nullable=False),
    Column("referral_id", String(36), nullable=False),
    Column("referral_status", String(40), nullable=False),
    Column("provider_id", String(100), nullable=False),
)

Table(
    "case_keys", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False),
)

Table(
    "case_personal_data", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
)


def upgrade() -> None:
    metadata.create_all(op.get_bind())
    create_platform_tables(op.get_bind())


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
