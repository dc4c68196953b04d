"""partial indexes for the hopper: never-tried records and due retries

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OPEN = "status IN ('new', 'scheduled')"


def upgrade() -> None:
    fresh = sa.text(f"{OPEN} AND next_due_at IS NULL")
    retry = sa.text(f"{OPEN} AND next_due_at IS NOT NULL")
    op.create_index(
        "ix_record_fresh",
        "record",
        ["list_id", sa.text("priority DESC"), "id"],
        sqlite_where=fresh,
        postgresql_where=fresh,
    )
    op.create_index(
        "ix_record_retry",
        "record",
        ["list_id", sa.text("priority DESC"), "next_due_at", "id"],
        sqlite_where=retry,
        postgresql_where=retry,
    )


def downgrade() -> None:
    op.drop_index("ix_record_retry", table_name="record")
    op.drop_index("ix_record_fresh", table_name="record")
