"""intake: its own record of every referral made for its cases (`referrals`), so a contact read is
allowed by what intake saw of the referral, not by the calling service's word.

Revision ID: 0004
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from intake.adapters.tables import metadata_0004, needs, referrals

revision = "0004"
down_revision = "0003"

# Statuses that show the provider accepted (failed is reached only from accepted or in service). An
# earlier cancelled or expired one may or may not have been: it is not taken as accepted.
WAS_ACCEPTED = ("accepted", "in_service", "completed", "failed")


def upgrade() -> None:
    bind = op.get_bind()
    metadata_0004.create_all(bind)  # checkfirst
    known = {r for (r,) in bind.execute(sa.select(referrals.c.referral_id))}
    now = datetime.now(UTC)
    rows = [dict(referral_id=n.referral_id, case_id=n.case_id, need_id=n.need_id, provider_id=n.provider_id,
                 status=n.referral_status, accepted=n.referral_status in WAS_ACCEPTED, updated_at=now)
            for n in bind.execute(sa.select(needs).where(needs.c.referral_id != ""))
            if n.referral_id not in known]
    if rows:
        bind.execute(sa.insert(referrals), rows)


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
