"""agent_state_log; interaction.queue_name, agent_code, customer

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_state_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_code", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=80), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_state_log")),
    )
    op.create_index("ix_agent_state_log_agent_at", "agent_state_log", ["agent_code", "at"])
    with op.batch_alter_table("interaction") as batch:
        batch.add_column(sa.Column("queue_name", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("agent_code", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("customer", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("interaction") as batch:
        batch.drop_column("customer")
        batch.drop_column("agent_code")
        batch.drop_column("queue_name")
    op.drop_index("ix_agent_state_log_agent_at", table_name="agent_state_log")
    op.drop_table("agent_state_log")
