"""referral: the directory's version stamp, so each process keeps the directory in memory and reloads it
only after a change.

Revision ID: 0004
"""

import uuid
from datetime import UTC, datetime

from alembic import op
from sqlalchemy import Column, DateTime, Integer, String

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    table = op.create_table(
        "directory_version",
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("stamp", String(36), nullable=False),
        Column("changed_at", DateTime(timezone=True), nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "stamp": str(uuid.uuid4()), "changed_at": datetime.now(UTC)}])


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
