"""referral: accessibility. What a provider (a shelter) offers, from the directory, and what a survivor needs, from
intake's CaseAssessed; routing gives a shelter only to a survivor whose needs it meets. Codes only.

Revision ID: casework_0007
"""

import sqlalchemy as sa
from alembic import op

revision = "casework_0007"
down_revision = "lease_relay"


def upgrade() -> None:
    op.add_column("providers", sa.Column("accessibility", sa.String(300), nullable=False, server_default=""))
    op.add_column("cases", sa.Column("accessibility_needs", sa.String(300), nullable=False, server_default=""))


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
