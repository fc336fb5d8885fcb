"""intake: what the indicator reports need of a case (may it be counted, the line that took it, disability) and
which cases and calls came from before refnet (ImportHistory).

Revision ID: reports_0006
"""

import sqlalchemy as sa
from alembic import op

revision = "reports_0006"
down_revision = "casework_0006"


def upgrade() -> None:
    # Cases registered before: countable (nobody said otherwise), their line read from where they were reported.
    op.add_column("cases", sa.Column("reporting_consent", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.add_column("cases", sa.Column("handling_line", sa.String(10), nullable=True))
    op.add_column("cases", sa.Column("disability", sa.String(10), nullable=True))
    op.add_column("cases", sa.Column("imported", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("calls", sa.Column("imported", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
