"""intake: the relay's lease (refnet_platform.relay_lease), so only one relay publishes the outbox at a time.

Revision ID: lease_relay
"""

import sqlalchemy as sa
from alembic import op

revision = "lease_relay"
down_revision = "0005"


def upgrade() -> None:
    # A database made after this revision was written has it from the first migration's platform tables.
    if sa.inspect(op.get_bind()).has_table("relay_lease"):
        return
    op.create_table(
        "relay_lease",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
