"""intake: calls, consent records, idempotent requests, the append-only audit log; case status,
triage deadline and where a case was reported; one need per service per case.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

APPEND_ONLY = "audit_log is append-only"


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("cases", sa.Column("age_band", sa.String(20), nullable=True))
    op.add_column("cases", sa.Column("status", sa.String(20), nullable=False, server_default="open"))
    op.add_column("cases", sa.Column("reported_province_code", sa.String(10), nullable=True))
    op.add_column("cases", sa.Column("reported_commune_code", sa.String(10), nullable=True))
    op.add_column("cases", sa.Column("call_id", sa.String(36), nullable=True))
    op.add_column("cases", sa.Column("child_protection_deadline", sa.DateTime(timezone=True), nullable=True))
    op.add_column("cases", sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("cases", sa.Column("close_outcome", sa.String(40), nullable=True))
    op.add_column("cases", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "calls",
        sa.Column("call_id", sa.String(36), primary_key=True),
        sa.Column("province_code", sa.String(10), nullable=False, index=True),
        sa.Column("commune_code", sa.String(10), nullable=False),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("topic", sa.String(40), nullable=False),
        sa.Column("anonymous", sa.Boolean, nullable=False),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.case_id"), nullable=True, index=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_seconds", sa.Integer, nullable=False),
        sa.Column("logged_by", sa.String(100), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "consents",
        sa.Column("consent_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.case_id"), nullable=False, index=True),
        sa.Column("need_id", sa.String(36), sa.ForeignKey("needs.need_id"), nullable=False, index=True),
        sa.Column("given_by", sa.String(30), nullable=False),
        sa.Column("legal_basis", sa.String(300), nullable=False),
        sa.Column("recipient_sectors", sa.JSON, nullable=False),
        sa.Column("data_categories", sa.JSON, nullable=False),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(100), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_by", sa.String(100), nullable=True),
    )
    op.create_table(
        "client_requests",
        sa.Column("client_request_id", sa.String(100), primary_key=True),
        sa.Column("operation", sa.String(40), nullable=False),
        sa.Column("case_id", sa.String(36), nullable=True),
        sa.Column("result_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("audit_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.String(100), nullable=False),
        sa.Column("actor_role", sa.String(20), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("case_id", sa.String(36), nullable=False, index=True),
        sa.Column("need_id", sa.String(36), nullable=False),
        sa.Column("referral_id", sa.String(100), nullable=False),
        sa.Column("recipient_id", sa.String(100), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("detail", sa.String(400), nullable=False),
    )
    op.create_index("needs_case_service", "needs", ["case_id", "service_type"], unique=True)

    if bind.dialect.name == "postgresql":
        op.execute(f"""
            CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$""")
        op.execute("CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
                   "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()")
        op.execute("CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
                   "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()")
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                       f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END")


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
