"""notifications: deliveries, the in-app feed, recipients, supervisors, cases, referrals, consents, dead letters.

Revision ID: 0002
"""

from alembic import op
from sqlalchemy import BigInteger, Boolean, Column, DateTime, Index, Integer, String, Text

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "deliveries",
        Column("notice_id", String(36), primary_key=True),
        Column("lane", String(20), nullable=False),
        Column("role", String(20), nullable=False),
        Column("kind", String(40), nullable=False),
        Column("priority", Integer, nullable=False),
        Column("language", String(5), nullable=False),
        Column("address", String(500), nullable=False),
        Column("html", Text, nullable=False),
        Column("payload", Text, nullable=False),
        Column("service_type", String(40), nullable=False),
        Column("sector", String(40), nullable=False),
        Column("status", String(20), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("next_attempt_at", DateTime(timezone=True), nullable=True),
        Column("lease_until", DateTime(timezone=True), nullable=True),
        Column("detail", String(300), nullable=False),
        Column("correlation_id", String(36), nullable=False),
        Column("traceparent", String(55), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Index("ix_deliveries_due", "lane", "status", "priority", "next_attempt_at"),
    )
    op.create_table(
        "feed",
        Column("sequence", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("notice_id", String(36), nullable=False, unique=True),
        Column("role", String(20), nullable=False),
        Column("recipient_id", String(100), nullable=False),
        Column("case_id", String(36), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=False),
        Index("ix_feed_recipient", "role", "recipient_id", "sequence"),
    )
    op.create_table(
        "recipients",
        Column("role", String(20), primary_key=True),
        Column("recipient_id", String(100), primary_key=True),
        Column("language", String(5), nullable=False),
        Column("email", String(300), nullable=False),
        Column("phone", String(30), nullable=False),
        Column("webhook_url", String(500), nullable=False),
        Column("province_code", String(10), nullable=False),
        Column("sector", String(40), nullable=False),
    )
    op.create_table(
        "supervisors",
        Column("supervisor_id", String(100), primary_key=True),
        Column("province_code", String(10), nullable=False),
    )
    op.create_table(
        "cases",
        Column("case_id", String(36), primary_key=True),
        Column("province_code", String(10), nullable=False),
        Column("case_worker_id", String(100), nullable=False),
    )
    op.create_table(
        "referrals",
        Column("referral_id", String(36), primary_key=True),
        Column("case_id", String(36), nullable=False, index=True),
        Column("case_worker_id", String(100), nullable=False),
        Column("provider_id", String(100), nullable=False),
        Column("service_type", String(40), nullable=False),
        Column("priority", Integer, nullable=False),
        Column("province_code", String(10), nullable=False),
    )
    op.create_table(
        "consents",
        Column("case_id", String(36), primary_key=True),
        Column("service_type", String(40), primary_key=True),
    )
    op.create_table(
        "dead_letters",
        Column("notice_id", String(36), primary_key=True),
        Column("lane", String(20), nullable=False),
        Column("recipient_id", String(100), nullable=False),
        Column("role", String(20), nullable=False),
        Column("kind", String(40), nullable=False),
        Column("referral_id", String(36), nullable=False),
        Column("case_id", String(36), nullable=False),
        Column("province_code", String(10), nullable=False),
        Column("source_event_id", String(36), nullable=False),
        Column("emergency", Boolean, nullable=False),
        Column("reason", String(40), nullable=False),
        Column("detail", String(300), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("failed_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True, index=True),
    )


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
