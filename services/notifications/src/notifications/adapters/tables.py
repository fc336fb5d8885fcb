from __future__ import annotations

from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, UniqueConstraint

metadata = MetaData()

notices = Table(
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
    # Exactly one notice per (event, recipient, channel), however often the event is delivered.
    UniqueConstraint("source_event_id", "recipient_id", "channel", name="uq_notice_once"),
)
