"""referral: providers' duty phones, so a text from one answers a referral for that provider.

Revision ID: sms_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "sms_0001"
down_revision = "casework_0007"


def upgrade() -> None:
    op.create_table(
        "duty_phones",
        sa.Column("phone", sa.String(20), primary_key=True),
        sa.Column("provider_id", sa.String(100), nullable=False, index=True),
        sa.Column("language", sa.String(5), nullable=False, server_default="vi"),
    )


def downgrade() -> None:
    op.drop_table("duty_phones")
