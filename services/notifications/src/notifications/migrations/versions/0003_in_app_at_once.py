"""notifications: in-app notices still waiting for a dispatch round are put in their feed.

From this revision an in-app notice is written to its feed in the transaction that records it, and the
dispatcher has no in-app lane any more: one recorded by the previous release and not yet dispatched would
otherwise never reach its feed. (Their NotificationSent/Delivered events are not published for these few.)

Revision ID: 0003
"""

from datetime import UTC, datetime

from alembic import op
from sqlalchemy import DateTime, Integer, and_, column, insert, literal, select, table, update

revision = "0003"
down_revision = "0002"

# The columns this revision reads and writes, as they were then.
deliveries = table(
    "deliveries", column("notice_id"), column("lane"), column("role"), column("status"), column("attempts", Integer),
    column("next_attempt_at", DateTime(timezone=True)), column("lease_until", DateTime(timezone=True)),
    column("created_at", DateTime(timezone=True)), column("updated_at", DateTime(timezone=True)))
feed = table("feed", column("notice_id"), column("role"), column("recipient_id"), column("case_id"),
             column("published_at", DateTime(timezone=True)))
notices = table("notices", column("notice_id"), column("recipient_id"), column("case_id"), column("status"))


def upgrade() -> None:
    conn = op.get_bind()
    now = datetime.now(UTC)
    waiting = and_(deliveries.c.lane == "in_app", deliveries.c.status == "pending")
    conn.execute(insert(feed).from_select(
        ["notice_id", "role", "recipient_id", "case_id", "published_at"],
        select(deliveries.c.notice_id, deliveries.c.role, notices.c.recipient_id, notices.c.case_id,
               literal(now, DateTime(timezone=True)))
        .join(notices, notices.c.notice_id == deliveries.c.notice_id)
        .where(waiting, deliveries.c.notice_id.not_in(select(feed.c.notice_id)))
        .order_by(deliveries.c.created_at)))
    conn.execute(update(notices).where(notices.c.notice_id.in_(select(deliveries.c.notice_id).where(waiting)))
                 .values(status="delivered"))
    conn.execute(update(deliveries).where(waiting).values(
        status="delivered", attempts=deliveries.c.attempts + 1, next_attempt_at=None, lease_until=None,
        updated_at=now))


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
