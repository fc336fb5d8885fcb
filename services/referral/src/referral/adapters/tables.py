"""Referral's tables as they are now. Migrations build them step by step (0001, 0002, ...); a test
checks the migrated database matches this file.

The directory is HSDS-shaped but kept simple: a provider row is an HSDS `service` (with its
organization's id and name, its phone as the public contact, its location as province and commune
codes), with its service areas and schedules beside it. Shelters keep no location beyond the province.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    true,
)

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
    Column("organization_id", String(100), nullable=False, server_default=""),
    Column("organization_name", String(300), nullable=False, server_default=""),
    Column("description", String(1000), nullable=False, server_default=""),
    Column("age_group", String(10), nullable=False, server_default="any"),
    # Comma-separated codes; empty: anyone.
    Column("sexes", String(40), nullable=False, server_default=""),
    Column("target_groups", String(100), nullable=False, server_default=""),
    Column("beds_capacity", Integer, nullable=True),
    Column("active", Boolean, nullable=False, server_default=true()),
    # Comma-separated accessibility codes it offers (casework_0007).
    Column("accessibility", String(300), nullable=False, server_default=""),
)

service_areas = Table(
    "service_areas", metadata,
    Column("provider_id", String(100), primary_key=True),
    # A 2-digit province or 5-digit commune code.
    Column("area_code", String(10), primary_key=True, index=True),
)

schedules = Table(
    "schedules", metadata,
    Column("provider_id", String(100), primary_key=True),
    Column("position", Integer, primary_key=True),
    # ISO weekdays, e.g. "1,2,3,4,5"; times "HH:MM" in Vietnam time.
    Column("weekdays", String(20), nullable=False),
    Column("opens_at", String(5), nullable=False),
    Column("closes_at", String(5), nullable=False),
)

# One row (id 1): a new random stamp with every change to the directory, so each process knows when the
# copy it caches is stale (see repository.DirectoryCache).
directory_version = Table(
    "directory_version", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("stamp", String(36), nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

# Live bed figures per pool (shelter, target group), as shelter keeps beds, learned from its events
# (seeded from the directory's capacity for a shelter that takes one group).
shelter_beds = Table(
    "shelter_beds", metadata,
    Column("shelter_id", String(100), primary_key=True),
    Column("target_group", String(40), primary_key=True),
    Column("capacity", Integer, nullable=False),
    Column("free", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# What routing knows of a case: codes only, never identity.
cases = Table(
    "cases", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("province_code", String(10), nullable=False),
    Column("commune_code", String(10), nullable=False),
    Column("is_child", Boolean, nullable=False),
    Column("sex", String(10), nullable=False),
    Column("risk_level", String(20), nullable=False),
    Column("emergency", Boolean, nullable=False),
    Column("case_worker_id", String(100), nullable=False),
    Column("child_deadline", DateTime(timezone=True), nullable=True),
    Column("state", String(10), nullable=False),
    # Comma-separated accessibility codes she needs, from intake's CaseAssessed (casework_0007).
    Column("accessibility_needs", String(300), nullable=False, server_default=""),
)

# Each need's consent, so a withdrawal stops routing for that need (and only that need).
needs = Table(
    "needs", metadata,
    Column("need_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False, index=True),
    Column("service_type", String(40), nullable=False),
    Column("consent", String(10), nullable=False),
    Column("sectors", String(300), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    # Intake's consent ids (UUIDv7: they sort by time): the one on record and the last one withdrawn.
    Column("consent_id", String(36), nullable=False, server_default=""),
    Column("withdrawn_consent_id", String(36), nullable=False, server_default=""),
)

referrals = Table(
    "referrals", metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False, index=True),
    Column("need_id", String(36), nullable=False, index=True),
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
    Column("accept_by", DateTime(timezone=True), nullable=True),
    Column("start_by", DateTime(timezone=True), nullable=True),
    # The deadline the SLA timer watches now (accept_by, then start_by); NULL when none.
    Column("due_at", DateTime(timezone=True), nullable=True, index=True),
    Column("attempt", Integer, nullable=False, server_default="1"),
    Column("previous_referral_id", String(36), nullable=False, server_default="", index=True),
    Column("provider_province_code", String(10), nullable=False, server_default=""),
    Column("bed", String(10), nullable=False, server_default="none"),
    Column("progress", String(40), nullable=False, server_default=""),
    Column("updated_at", DateTime(timezone=True), nullable=True, index=True),
    Column("version", Integer, nullable=False, server_default="1"),
)

# Every transition and progress report: the referral's audit trail.
referral_history = Table(
    "referral_history", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("referral_id", String(36), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("from_status", String(20), nullable=False),
    Column("to_status", String(20), nullable=False),
    Column("reason", String(100), nullable=False),
    # Who: an agency's provider id, "supervisor:<id>", or "referral" for the service itself.
    Column("actor", String(120), nullable=False),
)

# Request ids are kept in the platform's `requests` table (refnet_platform.requests), moved there by
# migration 0006.

# Created by sms_0001: the providers' duty phones (from the directory's duty contacts), normalised
# (refnet_platform.phone): a text from one answers for that provider. Staff data, read only by referral.
duty_phones = Table(
    "duty_phones", metadata,
    Column("phone", String(20), primary_key=True),
    Column("provider_id", String(100), nullable=False, index=True),
    Column("language", String(5), nullable=False, server_default="vi"),
)
