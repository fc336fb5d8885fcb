"""referral: intake's consent ids on each need, so out-of-order consent events end in the right state.

Revision ID: 0003
"""

from alembic import op
from sqlalchemy import Column, String

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("needs") as batch:
        batch.add_column(Column("consent_id", String(36), nullable=False, server_default=""))
        batch.add_column(Column("withdrawn_consent_id", String(36), nullable=False, server_default=""))


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
