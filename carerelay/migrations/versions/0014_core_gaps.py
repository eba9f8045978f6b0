"""core gaps: the organization's session policy (shared-device idle timeout, PIN lock)

Revision ID: 0014_core_gaps
Revises: 0009_exports
Create Date: 2026-12-01 08:29:12.663405
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_core_gaps"
down_revision: str | None = "0009_exports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shared_device_idle_minutes", sa.Integer(), nullable=True),
        sa.Column("pin_lock_minutes", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_policy")),
    )


def downgrade() -> None:
    op.drop_table("auth_policy")
