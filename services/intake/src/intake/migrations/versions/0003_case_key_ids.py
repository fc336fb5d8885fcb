"""intake: which master key wrapped each case key, so the master key can be rotated (`intake-keys`).

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

from intake.adapters.tables import case_keys

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    # 0001 builds `case_keys` from the current table definition, so a fresh database already has it.
    # Keys wrapped before keep NULL: the vault tries the configured master keys on them, and a
    # rotation re-wraps them under the current key with its id.
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("case_keys")}
    if "key_id" not in present:
        op.add_column("case_keys", sa.Column("key_id", case_keys.c.key_id.type, nullable=True))


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
