"""attempt.ref and the dialer's own columns; abandon_count (persisted ledger)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attempt") as batch:
        batch.add_column(sa.Column("ref", sa.String(length=120), nullable=True))
        batch.add_column(sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("verdict", sa.String(length=10), nullable=True))
        batch.add_column(sa.Column("agent_code", sa.String(length=40), nullable=True))
        batch.create_unique_constraint("uq_attempt_ref", ["ref"])
    op.create_index("ix_attempt_campaign_outcome", "attempt", ["campaign_id", "outcome"])
    op.create_table(
        "abandon_count",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grp", sa.String(length=120), nullable=False),
        sa.Column("day_start", sa.Float(), nullable=False),
        sa.Column("live", sa.Float(), nullable=False),
        sa.Column("abandoned", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_abandon_count")),
        sa.UniqueConstraint("grp", "day_start", name="uq_abandon_count_grp_day"),
    )


def downgrade() -> None:
    op.drop_table("abandon_count")
    op.drop_index("ix_attempt_campaign_outcome", table_name="attempt")
    with op.batch_alter_table("attempt") as batch:
        batch.drop_constraint("uq_attempt_ref", type_="unique")
        for name in ("agent_code", "verdict", "connected_at", "answered_at", "ref"):
            batch.drop_column(name)
