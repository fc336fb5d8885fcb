"""shelter: bed pools (one per target group), accessibility, and the pool and reason of a reservation.

A shelter's single count moves into its first pool; the overbooking CHECK moves with it.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "bed_pools",
        sa.Column("shelter_id", sa.String(100), primary_key=True),
        sa.Column("target_group", sa.String(40), primary_key=True),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("reserved", sa.Integer, nullable=False),
        sa.Column("occupied", sa.Integer, nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.CheckConstraint("capacity >= 0 AND reserved >= 0 AND occupied >= 0 AND reserved + occupied <= capacity",
                           name="ck_pool_never_overbooked"),
    )
    op.execute("INSERT INTO bed_pools (shelter_id, target_group, capacity, reserved, occupied, confirmed_at, version)"
               " SELECT shelter_id, target_group, capacity, reserved, occupied, confirmed_at, 1 FROM shelters")
    op.add_column("reservations", sa.Column("target_group", sa.String(40), nullable=False, server_default=""))
    op.add_column("reservations", sa.Column("reason", sa.String(40), nullable=False, server_default=""))
    op.execute("UPDATE reservations SET target_group = (SELECT s.target_group FROM shelters s"
               " WHERE s.shelter_id = reservations.shelter_id) WHERE shelter_id IN (SELECT shelter_id FROM shelters)")
    op.create_index("ix_reservations_due", "reservations", ["status", "hold_until"])
    # SQLite cannot drop columns under a CHECK: batch mode rebuilds the table there, and ALTERs it on PostgreSQL.
    with op.batch_alter_table("shelters", recreate="auto") as batch:
        batch.drop_constraint("ck_never_overbooked", type_="check")
        for column in ("target_group", "capacity", "reserved", "occupied", "confirmed_at"):
            batch.drop_column(column)
        batch.add_column(sa.Column("accessibility", sa.String(200), nullable=False, server_default=""))


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
