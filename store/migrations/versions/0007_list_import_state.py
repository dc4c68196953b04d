"""dial_list.import_state: a list being imported is not dialed until it is whole

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dial_list") as batch:
        batch.add_column(sa.Column("import_state", sa.String(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dial_list") as batch:
        batch.drop_column("import_state")
