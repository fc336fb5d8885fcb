"""shelter: the phones on each shelter's staff record, so a text from one reports for that shelter.

Revision ID: sms_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "sms_0001"
down_revision = "lease_relay"


def upgrade() -> None:
    op.create_table(
        "staff_phones",
        sa.Column("phone", sa.String(20), primary_key=True),
        sa.Column("shelter_id", sa.String(100), nullable=False, index=True),
        sa.Column("language", sa.String(5), nullable=False, server_default="vi"),
    )


def downgrade() -> None:
    op.drop_table("staff_phones")
