"""referral: live beds per pool (shelter, target group), as shelter keeps them, instead of per shelter.

A figure kept per shelter may have come from any of its pools. It is kept under the one group its
directory entries name when they name exactly one; otherwise it is dropped, and the shelter's next
CapacityChanged (or a rejected bed) tells again.

The table is small (one row per shelter) and only a cache of shelter's counts, so it is rebuilt with its
new key and its rows put back: the same statements on SQLite and PostgreSQL, where batch mode would
have to rebuild on one and ALTER the key by name on the other.

Revision ID: 0005
"""

from alembic import op
from sqlalchemy import Column, DateTime, Integer, String, text

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    bind = op.get_bind()
    groups: dict[str, set[str]] = {}
    for shelter_id, codes in bind.execute(text(
            "SELECT shelter_id, target_groups FROM providers WHERE shelter_id <> ''")):
        groups.setdefault(shelter_id, set()).update(c for c in codes.split(",") if c)
    rows = [{**r._asdict(), "target_group": next(iter(groups[r.shelter_id]))}
            for r in bind.execute(text("SELECT shelter_id, capacity, free, updated_at FROM shelter_beds")
                                  .columns(updated_at=DateTime(timezone=True)))
            if len(groups.get(r.shelter_id, ())) == 1]
    op.drop_table("shelter_beds")
    table = op.create_table(
        "shelter_beds",
        Column("shelter_id", String(100), primary_key=True),
        Column("target_group", String(40), primary_key=True),
        Column("capacity", Integer, nullable=False),
        Column("free", Integer, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
    op.bulk_insert(table, rows)


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
