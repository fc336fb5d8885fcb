"""intake: case work after intake. Assessments, case plans and their goals, follow-ups, reviews, reassignments,
a child's steps (Decree 56/2017) with their deadlines; on `cases`, the close reason and what the case list sorts
by (the step due first, the earliest deadline). Whatever a case worker writes is sealed with the case's key.

Revision ID: casework_0006
"""

import sqlalchemy as sa
from alembic import op

revision = "casework_0006"
down_revision = "erasure_0006"

# A case with no deadline sorts after every case with one (the case list's keyset needs a value, not NULL), as
# each dialect stores it (SQLAlchemy keeps SQLite's datetimes as text, without the zone).
NO_DEADLINE = {"sqlite": "9999-12-31 00:00:00.000000", "postgresql": "9999-12-31 00:00:00+00"}


def upgrade() -> None:
    op.add_column("cases", sa.Column("close_reason", sa.String(40), nullable=True))
    op.add_column("cases", sa.Column("current_step", sa.String(30), nullable=True))
    op.add_column("cases", sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=True))
    no_deadline = NO_DEADLINE[op.get_bind().dialect.name]
    op.add_column("cases", sa.Column("due_order", sa.DateTime(timezone=True), nullable=False,
                                     server_default=sa.text(f"'{no_deadline}'")))
    op.create_index("ix_cases_due_order", "cases", ["due_order"])
    op.create_table(
        "assessments",
        sa.Column("assessment_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.case_id"), nullable=False, index=True),
        sa.Column("risk_level", sa.String(20), nullable=False),
        sa.Column("immediate_danger", sa.Boolean, nullable=False),
        sa.Column("needs", sa.JSON, nullable=False),
        sa.Column("assessed_by", sa.String(100), nullable=False),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "case_plans",
        sa.Column("plan_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.case_id"), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("review_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_by", sa.String(100), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("case_plans_case_version", "case_id", "version", unique=True),
    )
    op.create_table(
        "plan_goals",
        sa.Column("goal_id", sa.String(36), primary_key=True),
        sa.Column("plan_id", sa.String(36), sa.ForeignKey("case_plans.plan_id"), nullable=False, index=True),
        sa.Column("case_id", sa.String(36), nullable=False, index=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("services", sa.JSON, nullable=False),
        sa.Column("responsible_kind", sa.String(20), nullable=False),
        sa.Column("responsible_id", sa.String(100), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "follow_ups",
        sa.Column("follow_up_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.case_id"), nullable=False, index=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(100), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "case_reviews",
        sa.Column("review_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.case_id"), nullable=False, index=True),
        sa.Column("outcome", sa.String(30), nullable=False),
        sa.Column("next_review_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by", sa.String(100), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "case_assignments",
        sa.Column("assignment_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.case_id"), nullable=False, index=True),
        sa.Column("from_case_worker_id", sa.String(100), nullable=False),
        sa.Column("to_case_worker_id", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("assigned_by", sa.String(100), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "case_steps",
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.case_id"), primary_key=True),
        sa.Column("step", sa.String(30), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Index("case_steps_due", "status", "escalated_at", "due_at"),
    )


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
