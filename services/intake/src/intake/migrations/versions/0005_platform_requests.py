"""intake: request ids move into the platform's `requests` table (refnet_platform.requests), which every
service that keeps requests shares the shape of. Intake's ids are shared by all its callers: its rows take
the scope "*"; the case a request acted on becomes its subject ("" when it made one). `client_requests` goes.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


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
        "SELECT '*', client_request_id, operation, COALESCE(case_id, ''), result_id, created_at "
        "FROM client_requests")
    op.drop_table("client_requests")


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
