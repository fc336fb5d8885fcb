from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, DateTime, Integer, MetaData, String, Table

metadata = MetaData()

shelters = Table(
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
    # The database itself refuses an overbooking, whatever the code above it does.
    CheckConstraint("reserved >= 0 AND occupied >= 0 AND reserved + occupied <= capacity", name="ck_never_overbooked"),
)

reservations = Table(
    "reservations", metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("shelter_id", String(100), nullable=False, index=True),
    Column("case_id", String(36), nullable=False),
    Column("province_code", String(10), nullable=False),
    Column("status", String(20), nullable=False),
    Column("hold_until", DateTime(timezone=True), nullable=False),
)
