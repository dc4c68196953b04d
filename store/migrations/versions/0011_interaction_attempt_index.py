"""interaction.attempt_id indexed: the disposition check looks up who took
a handed-over campaign call by its attempt

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_interaction_attempt_id"), "interaction", ["attempt_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_interaction_attempt_id"), table_name="interaction")
