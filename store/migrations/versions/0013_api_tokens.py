"""api_token: the live API / WebSocket tokens (their SHA-256, never the
token), so that a server restart logs no agent desktop or supervisor out

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_token",
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("username", sa.String(80), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_sha256", name="pk_api_token"),
    )
    op.create_index("ix_api_token_username", "api_token", ["username"])
    op.create_index("ix_api_token_expires_at", "api_token", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_api_token_expires_at", table_name="api_token")
    op.drop_index("ix_api_token_username", table_name="api_token")
    op.drop_table("api_token")
