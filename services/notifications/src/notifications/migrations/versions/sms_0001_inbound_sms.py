"""notifications: texts received from the SMS gateway, once per gateway message id.

Revision ID: sms_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "sms_0001"
down_revision = "lease_relay"


def upgrade() -> None:
    op.create_table(
        "inbound_sms",
        sa.Column("message_id", sa.String(128), primary_key=True),
        sa.Column("sender_key", sa.String(64), nullable=False, index=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("reply", sa.String(40), nullable=False, server_default=""),
        sa.Column("reply_status", sa.String(20), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("inbound_sms")
