"""hopper: records claimed by a dialer, until their attempt's outcome

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hopper",
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"], ["record.id"], name=op.f("fk_hopper_record_id_record")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaign.id"], name=op.f("fk_hopper_campaign_id_campaign")
        ),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_hopper")),
    )
    op.create_index("ix_hopper_campaign_id", "hopper", ["campaign_id"])


def downgrade() -> None:
    op.drop_index("ix_hopper_campaign_id", table_name="hopper")
    op.drop_table("hopper")
