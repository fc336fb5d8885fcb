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
    false,
    true,
)

# Revision 0001's tables (the `cases` columns from `age_band` on were added by 0002, `case_keys.key_id` by 0003,
# the case-work columns of `cases` by casework_0006: appended below).
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
    # Added by reports_0006: may it be counted in the reports, the line that took it, from before refnet.
    Column("reporting_consent", Boolean, nullable=False, server_default=true()),
    Column("handling_line", String(10), nullable=True),
    Column("disability", String(10), nullable=True),
    Column("imported", Boolean, nullable=False, server_default=false()),
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

# The case's own data key, wrapped by the master key. Erasure deletes it and everything it sealed.
case_keys = Table(
    "case_keys", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False),
    # Which master key wrapped it (crypto.key_id, never the key); NULL: wrapped before 0003 recorded it.
    Column("key_id", String(16), nullable=True),
)

# Personal data, AES-256-GCM under the case's key: name, phone, address, safe-contact note and times, narrative.
# Erasure deletes the row with the key: a backup taken before, restored with the master key, would read it again.
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
    Column("imported", Boolean, nullable=False, server_default=false()),  # added by reports_0006
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

# Revision erasure_0006's table. Since then a consent's `legal_basis` holds a code (LegalBasis), and its note, if
# any, is here, sealed under the case's key and deleted with the case. `pending`: a note converted from the old
# free text, in clear until intake-api (which holds the master key) seals it at start.
metadata_erasure = MetaData()

consent_notes = Table(
    "consent_notes", metadata_erasure,
    Column("consent_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False, index=True),
    Column("sealed", LargeBinary, nullable=True),
    Column("pending", String(300), nullable=True),
)

# Revision casework_0006's tables: case work after intake. Ids and codes in the clear (lists sort and filter on
# them); whatever a case worker writes, and the survivor's difficulties and accessibility needs, sealed with the
# case's key (`ciphertext`, AES-256-GCM bound to the case and the row): erasing the case's key erases them too.
metadata_casework = MetaData()

# Added to `cases` by casework_0006.
CASE_COLUMNS_CASEWORK = ("close_reason", "current_step", "next_due_at", "due_order")
cases.append_column(Column("close_reason", String(40), nullable=True))
cases.append_column(Column("current_step", String(30), nullable=True))
cases.append_column(Column("next_due_at", DateTime(timezone=True), nullable=True))
# next_due_at, or far in the future when there is none: the case list's sort key (with case_id).
cases.append_column(Column("due_order", DateTime(timezone=True), nullable=False, index=True))

assessments = Table(
    "assessments", metadata_casework,
    Column("assessment_id", String(36), primary_key=True),
    Column("case_id", String(36), ForeignKey(cases.c.case_id), nullable=False, index=True),
    Column("risk_level", String(20), nullable=False),
    Column("immediate_danger", Boolean, nullable=False),
    Column("needs", JSON, nullable=False),
    Column("assessed_by", String(100), nullable=False),
    Column("assessed_at", DateTime(timezone=True), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),  # difficulties, accessibility needs, summary
)

case_plans = Table(
    "case_plans", metadata_casework,
    Column("plan_id", String(36), primary_key=True),
    Column("case_id", String(36), ForeignKey(cases.c.case_id), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("review_due_at", DateTime(timezone=True), nullable=True),
    Column("recorded_by", String(100), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("case_plans_case_version", "case_id", "version", unique=True),
)

plan_goals = Table(
    "plan_goals", metadata_casework,
    Column("goal_id", String(36), primary_key=True),
    Column("plan_id", String(36), ForeignKey(case_plans.c.plan_id), nullable=False, index=True),
    Column("case_id", String(36), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("services", JSON, nullable=False),
    Column("responsible_kind", String(20), nullable=False),
    Column("responsible_id", String(100), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("status", String(20), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),  # the description
)

follow_ups = Table(
    "follow_ups", metadata_casework,
    Column("follow_up_id", String(36), primary_key=True),
    Column("case_id", String(36), ForeignKey(cases.c.case_id), nullable=False, index=True),
    Column("kind", String(30), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(100), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),  # the note
)

case_reviews = Table(
    "case_reviews", metadata_casework,
    Column("review_id", String(36), primary_key=True),
    Column("case_id", String(36), ForeignKey(cases.c.case_id), nullable=False, index=True),
    Column("outcome", String(30), nullable=False),
    Column("next_review_at", DateTime(timezone=True), nullable=True),
    Column("reviewed_by", String(100), nullable=False),
    Column("reviewed_at", DateTime(timezone=True), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),  # the note
)

case_assignments = Table(
    "case_assignments", metadata_casework,
    Column("assignment_id", String(36), primary_key=True),
    Column("case_id", String(36), ForeignKey(cases.c.case_id), nullable=False, index=True),
    Column("from_case_worker_id", String(100), nullable=False),
    Column("to_case_worker_id", String(100), nullable=False),
    Column("reason", String(40), nullable=False),
    Column("assigned_by", String(100), nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
)

# A child's steps (Decree 56/2017), one row per step; the timer reads the open ones past due_at and not yet
# escalated, so a restarted worker finds every missed deadline.
case_steps = Table(
    "case_steps", metadata_casework,
    Column("case_id", String(36), ForeignKey(cases.c.case_id), primary_key=True),
    Column("step", String(30), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=True),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("done_at", DateTime(timezone=True), nullable=True),
    Column("escalated_at", DateTime(timezone=True), nullable=True),
    Index("case_steps_due", "status", "escalated_at", "due_at"),
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
