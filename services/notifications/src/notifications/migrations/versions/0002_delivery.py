"""notifications: deliveries, the in-app feed, recipients, supervisors, cases, referrals, consents, dead letters.

Revision ID: 0002
"""

from alembic import op

from notifications.adapters.tables import delivery_metadata

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    # Only tables of their own MetaData, created if absent: 0001 stays what it was.
    delivery_metadata.create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
