"""web client: embedded EHR launch nonces

Revision ID: 0010_web
Revises: 0012_reporting
Create Date: 2026-12-01 08:21:28.131678
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_web"
down_revision: str | None = "0012_reporting"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "embed_launches",
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("ehr_username", sa.String(length=120), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_embed_launches_patient_id_patients")),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_embed_launches_person_id_people"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_embed_launches")),
    )
    with op.batch_alter_table("embed_launches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_embed_launches_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("embed_launches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_embed_launches_expires_at"))
    op.drop_table("embed_launches")
