from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, ForeignKey, Integer, LargeBinary, MetaData, String, Table

metadata = MetaData()

cases = Table(
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

needs = Table(
    "needs", metadata,
    Column("need_id", String(36), primary_key=True),
    Column("case_id", String(36), ForeignKey("cases.case_id"), nullable=False, index=True),
    Column("service_type", String(40), nullable=False),
    Column("consented", Boolean, nullable=False),
    Column("referral_id", String(36), nullable=False, default=""),
    Column("referral_status", String(40), nullable=False, default=""),
    Column("provider_id", String(100), nullable=False, default=""),
)

# The case's own data key, wrapped by the master key. Deleting the row erases the case's personal data.
case_keys = Table(
    "case_keys", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False),
)

# Personal data, AES-256-GCM under the case's key: name, phone, address, safe-contact note, narrative.
case_personal_data = Table(
    "case_personal_data", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
)
