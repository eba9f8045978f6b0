"""reporting: alert delivered/read times and report indexes, on-duty routing rules, message resolution

Revision ID: 0012_reporting
Revises: 0013_hl7_rules
Create Date: 2026-12-01 08:34:20.378901
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_reporting"
down_revision: str | None = "0013_hl7_rules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_recipients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("read_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alerts_created_at"), ["created_at"], unique=False)
        batch_op.create_index("ix_alerts_source_ref", ["source", "source_ref"], unique=False)

    with op.batch_alter_table("routing_rules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("on_duty", sa.Boolean(), nullable=True))

    # Plain ALTER TABLE, never a batch copy: messages carry the immutability triggers and (SQLite)
    # the full-text index, which a table rebuild would drop. Adding a nullable column fires no row
    # trigger on either database.
    op.add_column("conversations", sa.Column("resolution", sa.JSON(), nullable=True))
    op.add_column("messages", sa.Column("resolution", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "resolution")
    op.drop_column("conversations", "resolution")

    with op.batch_alter_table("routing_rules", schema=None) as batch_op:
        batch_op.drop_column("on_duty")

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_source_ref")
        batch_op.drop_index(batch_op.f("ix_alerts_created_at"))

    with op.batch_alter_table("alert_recipients", schema=None) as batch_op:
        batch_op.drop_column("read_at")
        batch_op.drop_column("delivered_at")
