"""intake: cases, needs, per-case keys and encrypted personal data; outbox and inbox.

Revision ID: 0001
"""

from alembic import op

from intake.adapters.tables import metadata
from refnet_platform.tables import create_platform_tables

revision = "0001"
down_revision = None


def upgrade() -> None:
    # The first revision creates the tables as first defined; later changes get their own revisions.
    metadata.create_all(op.get_bind())
    create_platform_tables(op.get_bind())


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
