"""intake: its own record of every referral made for its cases (`referrals`), so a contact read is
allowed by what intake saw of the referral, not by the calling service's word.

Revision ID: 0004
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

# Statuses that show the provider accepted (failed is reached only from accepted or in service). An
# earlier cancelled or expired one may or may not have been: it is not taken as accepted.
WAS_ACCEPTED = ("accepted", "in_service", "completed", "failed")

# The columns of `needs` this revision reads, as they were then.
needs = sa.table("needs", *(sa.column(name) for name in (
    "need_id", "case_id", "provider_id", "referral_id", "referral_status")))


def upgrade() -> None:
    referrals = op.create_table(
        "referrals",
        sa.Column("referral_id", sa.String(100), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.case_id"), nullable=False, index=True),
        sa.Column("need_id", sa.String(36), nullable=False),
        sa.Column("provider_id", sa.String(100), nullable=False),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("accepted", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Each need's latest referral, the one intake knew of before this record.
    now = datetime.now(UTC)
    rows = [dict(referral_id=n.referral_id, case_id=n.case_id, need_id=n.need_id, provider_id=n.provider_id,
                 status=n.referral_status, accepted=n.referral_status in WAS_ACCEPTED, updated_at=now)
            for n in op.get_bind().execute(sa.select(needs).where(needs.c.referral_id != ""))]
    if rows:
        op.bulk_insert(referrals, rows)


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
