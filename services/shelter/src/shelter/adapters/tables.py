"""shelter's tables as they are at the newest migration (each revision in migrations/versions says how)."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Index, Integer, MetaData, String, Table

metadata = MetaData()

shelters = Table(
    "shelters", metadata,
    Column("shelter_id", String(100), primary_key=True),
    Column("name", String(300), nullable=False),
    Column("province_code", String(10), nullable=False, index=True),
    Column("commune_code", String(10), nullable=False),
    # Accessibility codes, comma-separated.
    Column("accessibility", String(200), nullable=False, server_default=""),
    # Confidential: read only by this service, shown only to the shelter's own staff.
    Column("address", String(500), nullable=False),
)

bed_pools = Table(
    "bed_pools", metadata,
    Column("shelter_id", String(100), primary_key=True),
    Column("target_group", String(40), primary_key=True),
    Column("capacity", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    Column("occupied", Integer, nullable=False),
    Column("confirmed_at", DateTime(timezone=True), nullable=False),
    Column("version", BigInteger, nullable=False),
    # The database itself refuses an overbooking, whatever the code above it does.
    CheckConstraint("capacity >= 0 AND reserved >= 0 AND occupied >= 0 AND reserved + occupied <= capacity",
                    name="ck_pool_never_overbooked"),
)

reservations = Table(
    "reservations", metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("shelter_id", String(100), nullable=False, index=True),
    Column("case_id", String(36), nullable=False),
    Column("province_code", String(10), nullable=False),
    Column("status", String(20), nullable=False),
    Column("hold_until", DateTime(timezone=True), nullable=False),
    # The pool the bed is in ("" when rejected before a pool was chosen).
    Column("target_group", String(40), nullable=False, server_default=""),
    Column("reason", String(40), nullable=False, server_default=""),
    # The expiry timer's scan: held reservations by deadline.
    Index("ix_reservations_due", "status", "hold_until"),
)

# Who may report for a shelter by SMS: the phones on its staff record (from the directory), normalised
# (refnet_platform.phone). Staff data, read only by this service to find the shelter a text is from.
staff_phones = Table(
    "staff_phones", metadata,
    Column("phone", String(20), primary_key=True),
    Column("shelter_id", String(100), nullable=False, index=True),
    Column("language", String(5), nullable=False, server_default="vi"),
)
