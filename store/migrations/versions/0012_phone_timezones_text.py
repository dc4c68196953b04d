"""contact_phone.timezones is text: a US toll-free number rings in every US
zone (727 characters), more than the 200 the column held, and calling hours
are checked in each zone, so none may be cut

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact_phone") as batch:
        batch.alter_column("timezones", type_=sa.Text(), existing_type=sa.String(200))


def downgrade() -> None:
    with op.batch_alter_table("contact_phone") as batch:
        batch.alter_column("timezones", type_=sa.String(200), existing_type=sa.Text())
