"""web: the sessions table (the web app owns no case data).

Revision ID: 0001

The table exactly as first defined (frozen here, so later changes to adapters/sessions.py never change what
this revision does; they get revisions of their own).
"""

from alembic import op
from sqlalchemy import Column, Float, LargeBinary, String

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        Column("key", String(64), primary_key=True),
        Column("username", String(200), nullable=False, server_default=""),
        Column("data", LargeBinary, nullable=False),
        Column("expires_at", Float, nullable=False, index=True),
    )


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
