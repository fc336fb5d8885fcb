from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, MetaData, String, Table, UniqueConstraint

metadata = MetaData()

providers = Table(
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

referrals = Table(
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
    # One live referral per need and provider: a redelivered case creates nothing new.
    UniqueConstraint("need_id", "provider_id", name="uq_referral_need_provider"),
)
