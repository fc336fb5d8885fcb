"""referral: request ids move into the platform's `requests` table (refnet_platform.requests), which every
service that keeps requests shares the shape of. The scope is the caller key the rows were kept under; the
subject is the referral acted on (for an assignment, the escalated referral the new one replaced) and the
result the referral changed or made. `api_requests` goes.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    # The platform's table as it is at this revision.
    op.create_table(
        "requests",
        sa.Column("scope", sa.String(120), primary_key=True),
        sa.Column("request_id", sa.String(100), primary_key=True),
        sa.Column("operation", sa.String(40), nullable=False),
        sa.Column("subject_id", sa.String(36), nullable=False),
        sa.Column("result_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute(
        "INSERT INTO requests (scope, request_id, operation, subject_id, result_id, created_at) "
        "SELECT a.caller_id, a.request_id, a.operation, "
        "CASE WHEN a.operation = 'assign' THEN COALESCE((SELECT r.previous_referral_id FROM referrals r "
        "WHERE r.referral_id = a.referral_id), '') ELSE a.referral_id END, a.referral_id, a.created_at "
        "FROM api_requests a")
    op.drop_table("api_requests")


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
