"""referral: HSDS-shaped directory, cases and consent per need, referral deadlines and history.

Revision ID: 0002

- providers: organization, eligibility, bed capacity, active flag; service_areas and schedules beside.
- shelter_beds: live bed figures from shelter's events.
- cases, needs: what routing knows of a case, and each need's consent.
- referrals: SLA deadlines, attempts and the referral each one replaced, the bed's state, version;
  the one-referral-per-need-and-provider rule goes (a need may come back to a provider later,
  e.g. after consent is given again).
- referral_history, api_requests: the audit trail and the API's idempotency keys.
"""

from alembic import op
from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, String, true

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("providers") as batch:
        batch.add_column(Column("organization_id", String(100), nullable=False, server_default=""))
        batch.add_column(Column("organization_name", String(300), nullable=False, server_default=""))
        batch.add_column(Column("description", String(1000), nullable=False, server_default=""))
        batch.add_column(Column("age_group", String(10), nullable=False, server_default="any"))
        batch.add_column(Column("sexes", String(40), nullable=False, server_default=""))
        batch.add_column(Column("target_groups", String(100), nullable=False, server_default=""))
        batch.add_column(Column("beds_capacity", Integer, nullable=True))
        batch.add_column(Column("active", Boolean, nullable=False, server_default=true()))

    # SQLite cannot drop a constraint in place: batch mode copies the table.
    with op.batch_alter_table("referrals", recreate="auto") as batch:
        batch.drop_constraint("uq_referral_need_provider", type_="unique")
        batch.add_column(Column("accept_by", DateTime(timezone=True), nullable=True))
        batch.add_column(Column("start_by", DateTime(timezone=True), nullable=True))
        batch.add_column(Column("due_at", DateTime(timezone=True), nullable=True))
        batch.add_column(Column("attempt", Integer, nullable=False, server_default="1"))
        batch.add_column(Column("previous_referral_id", String(36), nullable=False, server_default=""))
        batch.add_column(Column("provider_province_code", String(10), nullable=False, server_default=""))
        batch.add_column(Column("bed", String(10), nullable=False, server_default="none"))
        batch.add_column(Column("progress", String(40), nullable=False, server_default=""))
        batch.add_column(Column("updated_at", DateTime(timezone=True), nullable=True))
        batch.add_column(Column("version", Integer, nullable=False, server_default="1"))
        batch.create_index("ix_referrals_need_id", ["need_id"])
        batch.create_index("ix_referrals_due_at", ["due_at"])
        batch.create_index("ix_referrals_previous_referral_id", ["previous_referral_id"])
        batch.create_index("ix_referrals_updated_at", ["updated_at"])

    op.create_table(
        "service_areas",
        Column("provider_id", String(100), primary_key=True),
        Column("area_code", String(10), primary_key=True, index=True),
    )
    op.create_table(
        "schedules",
        Column("provider_id", String(100), primary_key=True),
        Column("position", Integer, primary_key=True),
        Column("weekdays", String(20), nullable=False),
        Column("opens_at", String(5), nullable=False),
        Column("closes_at", String(5), nullable=False),
    )
    op.create_table(
        "shelter_beds",
        Column("shelter_id", String(100), primary_key=True),
        Column("capacity", Integer, nullable=False),
        Column("free", Integer, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "cases",
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
    )
    op.create_table(
        "needs",
        Column("need_id", String(36), primary_key=True),
        Column("case_id", String(36), nullable=False, index=True),
        Column("service_type", String(40), nullable=False),
        Column("consent", String(10), nullable=False),
        Column("sectors", String(300), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "referral_history",
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("referral_id", String(36), nullable=False, index=True),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("from_status", String(20), nullable=False),
        Column("to_status", String(20), nullable=False),
        Column("reason", String(100), nullable=False),
        Column("actor", String(120), nullable=False),
    )
    op.create_table(
        "api_requests",
        Column("caller_id", String(120), primary_key=True),
        Column("request_id", String(100), primary_key=True),
        Column("operation", String(40), nullable=False),
        Column("referral_id", String(36), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
