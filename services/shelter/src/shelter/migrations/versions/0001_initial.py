"""shelter: shelters and reservations; outbox and inbox.

Revision ID: 0001
"""

from alembic import op

from refnet_platform.db import create_platform_tables
from shelter.adapters.tables import metadata

revision = "0001"
down_revision = None


def upgrade() -> None:
    # The first revision creates the tables as first defined; later changes get their own revisions.
    metadata.create_all(op.get_bind())
    create_platform_tables(op.get_bind())


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
