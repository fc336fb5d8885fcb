"""web: the sessions table (the web app owns no case data).

Revision ID: 0001
"""

from alembic import op

from web.adapters.sessions import metadata

revision = "0001"
down_revision = None


def upgrade() -> None:
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
