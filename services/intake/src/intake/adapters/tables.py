from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

# Revision 0001's tables (the `cases` columns from `age_band` on were added by 0002, `case_keys.key_id` by 0003).
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
    Column("age_band", String(20), nullable=True),
    Column("status", String(20), nullable=False, server_default="open"),
    Column("reported_province_code", String(10), nullable=True),
    Column("reported_commune_code", String(10), nullable=True),
    Column("call_id", String(36), nullable=True),
    Column("child_protection_deadline", DateTime(timezone=True), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("close_outcome", String(40), nullable=True),
    Column("erased_at", DateTime(timezone=True), nullable=True),
)
CASE_COLUMNS_0002 = ("age_band", "status", "reported_province_code", "reported_commune_code", "call_id",
                     "child_protection_deadline", "closed_at", "close_outcome", "erased_at")

needs = Table(
    "needs", metadata,
    Column("need_id", String(36), primary_key=True),
    Column("case_id", String(36), ForeignKey("cases.case_id"), nullable=False, index=True),
    Column("service_type", String(40), nullable=False),
    # Whether the need's latest consent was given and not withdrawn (expiry is judged on reading).
    Column("consented", Boolean, nullable=False),
    Column("referral_id", String(36), nullable=False, default=""),
    Column("referral_status", String(40), nullable=False, default=""),
    Column("provider_id", String(100), nullable=False, default=""),
    # One need per service per case, even when two requests add it at once (created by 0002).
    Index("needs_case_service", "case_id", "service_type", unique=True),
)

# The case's own data key, wrapped by the master key. Deleting the row erases the case's personal data.
case_keys = Table(
    "case_keys", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False),
    # Which master key wrapped it (crypto.key_id, never the key); NULL: wrapped before 0003 recorded it.
    Column("key_id", String(16), nullable=True),
)

# Personal data, AES-256-GCM under the case's key: name, phone, address, safe-contact note and times, narrative.
# The row outlives an erasure: without the key it is noise.
case_personal_data = Table(
    "case_personal_data", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
)

# Revision 0002's tables.
metadata_0002 = MetaData()

calls = Table(
    "calls", metadata_0002,
    Column("call_id", String(36), primary_key=True),
    Column("province_code", String(10), nullable=False, index=True),
    Column("commune_code", String(10), nullable=False),
    Column("channel", String(40), nullable=False),
    Column("topic", String(40), nullable=False),
    Column("anonymous", Boolean, nullable=False),
    Column("outcome", String(40), nullable=False),
    Column("case_id", String(36), ForeignKey(cases.c.case_id), nullable=True, index=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("duration_seconds", Integer, nullable=False),
    Column("logged_by", String(100), nullable=False),
    Column("logged_at", DateTime(timezone=True), nullable=False),
)

# Every consent recorded, newest last per need; a withdrawal is stamped on the consent it ends.
consents = Table(
    "consents", metadata_0002,
    Column("consent_id", String(36), primary_key=True),
    Column("case_id", String(36), ForeignKey(cases.c.case_id), nullable=False, index=True),
    Column("need_id", String(36), ForeignKey(needs.c.need_id), nullable=False, index=True),
    Column("given_by", String(30), nullable=False),
    Column("legal_basis", String(300), nullable=False),
    Column("recipient_sectors", JSON, nullable=False),
    Column("data_categories", JSON, nullable=False),
    Column("given_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(100), nullable=False),
    Column("withdrawn_at", DateTime(timezone=True), nullable=True),
    Column("withdrawn_by", String(100), nullable=True),
)

# Requests (a repeat of client_request_id returns the first result) are kept in the platform's `requests`
# table (refnet_platform.requests), moved there by migration 0005.

# Append-only (triggers refuse UPDATE and DELETE): every read of personal data, refused ones too,
# every consent override and every erasure. Ids and codes only.
audit_log = Table(
    "audit_log", metadata_0002,
    Column("audit_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor_id", String(100), nullable=False),
    Column("actor_role", String(20), nullable=False),
    Column("action", String(40), nullable=False),
    Column("case_id", String(36), nullable=False, index=True),
    Column("need_id", String(36), nullable=False),
    Column("referral_id", String(100), nullable=False),
    Column("recipient_id", String(100), nullable=False),
    Column("purpose", String(64), nullable=False),
    Column("detail", String(400), nullable=False),
)

# Revision 0004's table.
metadata_0004 = MetaData()

# Intake's own record of every referral made for its cases, from referral's events (the need keeps only
# its latest one). GetCaseContact reads for a referral only when this record allows it. Ids and codes only.
referrals = Table(
    "referrals", metadata_0004,
    Column("referral_id", String(100), primary_key=True),
    Column("case_id", String(36), ForeignKey(cases.c.case_id), nullable=False, index=True),
    Column("need_id", String(36), nullable=False),
    Column("provider_id", String(100), nullable=False),
    Column("status", String(40), nullable=False),
    # Its provider accepted it at some point (it may have ended since).
    Column("accepted", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Created by sms_0001. Her number, only as keyed hashes (HMAC-SHA256 under a key derived from each configured
# master key, crypto.Vault.phone_keys): how a text from her (STOP) finds her case without the number being
# anywhere but her encrypted contact. Deleted with her case key when the case is erased.
contact_phones = Table(
    "contact_phones", metadata,
    Column("phone_key", String(64), primary_key=True),
    Column("case_id", String(36), primary_key=True),
)

# Created by sms_0001: the cases whose survivor texted STOP (no SMS to her until she texts START).
sms_stops = Table(
    "sms_stops", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("stopped_at", DateTime(timezone=True), nullable=False),
)
