"""ops: what the indicator reports break figures down by: the line that handled a case or call, the survivor as
codes (sex, age band, disability), a call's channel and outcome, a referral's provider type and failure, a stay's
end (bed-nights), and whether a record came from before refnet (imported).

Revision ID: reports_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "reports_0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column("cases", sa.Column("handling_line", sa.String(8), nullable=False, server_default=""))
    op.add_column("cases", sa.Column("sex", sa.String(20), nullable=False, server_default="unknown"))
    op.add_column("cases", sa.Column("age_band", sa.String(20), nullable=False, server_default="unknown"))
    op.add_column("cases", sa.Column("disability", sa.String(10), nullable=False, server_default="unknown"))
    op.add_column("cases", sa.Column("imported", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_cases_handling_line", "cases", ["handling_line"])
    op.add_column("calls", sa.Column("handling_line", sa.String(8), nullable=False, server_default=""))
    op.add_column("calls", sa.Column("channel", sa.String(40), nullable=False, server_default="unknown"))
    op.add_column("calls", sa.Column("outcome", sa.String(40), nullable=False, server_default="unknown"))
    op.add_column("calls", sa.Column("imported", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("referrals", sa.Column("provider_type", sa.String(40), nullable=False, server_default=""))
    op.add_column("referrals", sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("stays", sa.Column("released_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
