"""intake: which master key wrapped each case key, so the master key can be rotated (`intake-keys`).

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    # Keys wrapped before keep NULL: the vault tries the configured master keys on them, and a
    # rotation re-wraps them under the current key with its id.
    op.add_column("case_keys", sa.Column("key_id", sa.String(16), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
