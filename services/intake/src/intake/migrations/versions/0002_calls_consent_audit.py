"""intake: calls, consent records, idempotent requests, the append-only audit log; case status,
triage deadline and where a case was reported.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

from intake.adapters.tables import CASE_COLUMNS_0002, cases, metadata_0002

revision = "0002"
down_revision = "0001"

APPEND_ONLY = "audit_log is append-only"


def upgrade() -> None:
    bind = op.get_bind()
    # 0001 builds `cases` from the current table definition, so a fresh database already has these.
    present = {column["name"] for column in sa.inspect(bind).get_columns("cases")}
    for name in CASE_COLUMNS_0002:
        if name not in present:
            column = cases.c[name]
            default = column.server_default.arg if column.server_default is not None else None  # type: ignore[attr-defined]
            op.add_column("cases", sa.Column(name, column.type, nullable=column.nullable, server_default=default))
    metadata_0002.create_all(bind)  # checkfirst
    op.execute("CREATE UNIQUE INDEX IF NOT EXISTS needs_case_service ON needs (case_id, service_type)")
    if bind.dialect.name == "postgresql":
        op.execute(f"""
            CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$""")
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
                   "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
                   "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()")
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER IF NOT EXISTS audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                       f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END")


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
