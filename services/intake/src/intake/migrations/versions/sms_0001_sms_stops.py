"""intake: her number as keyed hashes (to find her case from a text), and the cases whose survivor texted STOP.

Cases registered before this revision have no hash of their number: a STOP from one finds nothing until the
number is recorded again (the master key, needed to hash it, is not available to a migration).

Revision ID: sms_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "sms_0001"
down_revision = "reports_0006"


def upgrade() -> None:
    op.create_table(
        "contact_phones",
        sa.Column("phone_key", sa.String(64), primary_key=True),
        sa.Column("case_id", sa.String(36), primary_key=True),
    )
    op.create_table(
        "sms_stops",
        sa.Column("case_id", sa.String(36), primary_key=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sms_stops")
    op.drop_table("contact_phones")
