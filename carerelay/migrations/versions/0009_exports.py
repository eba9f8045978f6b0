"""Export connectors: configuration, run history with payloads, and what each other side holds

Revision ID: 0009_exports
Revises: 0008_staff_assignments
Create Date: 2026-12-01 08:28:58.491265
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_exports"
down_revision: str | None = "0008_staff_assignments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "export_connectors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("target", sa.String(length=40), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("person_key", sa.String(length=30), nullable=True),
        sa.Column("mapping_key", sa.String(length=60), nullable=False),
        sa.Column("department_ids", sa.JSON(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("trigger", sa.JSON(), nullable=False),
        sa.Column("content", sa.String(length=10), nullable=False),
        sa.Column("transport", sa.JSON(), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("notify", sa.JSON(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seen_watermark", sa.JSON(), nullable=True),
        sa.Column("state_period", sa.String(length=10), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_alert_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_connectors")),
        sa.UniqueConstraint("name", name=op.f("uq_export_connectors_name")),
    )
    with op.batch_alter_table("export_connectors", schema=None) as batch_op:
        batch_op.create_index("ix_export_connectors_due", ["enabled", "next_due_at"], unique=False)

    op.create_table(
        "export_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("content", sa.String(length=10), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("destination", sa.String(length=500), nullable=True),
        sa.Column("file_name", sa.String(length=200), nullable=True),
        sa.Column("content_type", sa.String(length=100), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("payload_sha256", sa.String(length=64), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.String(length=10), nullable=True),
        sa.Column("excluded", sa.JSON(), nullable=False),
        sa.Column("unmapped", sa.JSON(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["connector_id"],
            ["export_connectors.id"],
            name=op.f("fk_export_runs_connector_id_export_connectors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_runs")),
    )
    with op.batch_alter_table("export_runs", schema=None) as batch_op:
        batch_op.create_index("ix_export_runs_connector", ["connector_id", "id"], unique=False)
        batch_op.create_index("ix_export_runs_due", ["status", "next_attempt_at"], unique=False)

    op.create_table(
        "export_state",
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("remote_id", sa.String(length=500), nullable=True),
        sa.Column("on_date", sa.Date(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connector_id"],
            ["export_connectors.id"],
            name=op.f("fk_export_state_connector_id_export_connectors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connector_id", "key", name=op.f("pk_export_state")),
    )


def downgrade() -> None:
    op.drop_table("export_state")
    with op.batch_alter_table("export_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_export_runs_due")
        batch_op.drop_index("ix_export_runs_connector")

    op.drop_table("export_runs")
    with op.batch_alter_table("export_connectors", schema=None) as batch_op:
        batch_op.drop_index("ix_export_connectors_due")

    op.drop_table("export_connectors")
