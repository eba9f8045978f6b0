"""hl7 presenting rules, hand-off targets, alert digests

Hand-offs gain the target they are addressed to (``ordering`` for every row written before) and a
detail object; digests of presenting-patient alerts wait in ``alert_digest_items``.

Revision ID: 0013_hl7_rules
Revises: 0006_escalation
Create Date: 2026-12-01 08:30:19.821384
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_hl7_rules"
down_revision: str | None = "0006_escalation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('alert_digest_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('digest_key', sa.String(length=120), nullable=False),
    sa.Column('target', sa.String(length=300), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('priority', sa.String(length=10), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('line', sa.String(length=500), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('source_ref', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('alert_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_digest_items_alert_id_alerts')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_alert_digest_items_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_digest_items'))
    )
    with op.batch_alter_table('alert_digest_items', schema=None) as batch_op:
        batch_op.create_index('ix_alert_digest_items_pending', ['digest_key', 'sent_at'], unique=False)

    with op.batch_alter_table('clinical_handoffs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('target', sa.String(length=300), nullable=False, server_default="ordering"))
        batch_op.add_column(sa.Column('detail', sa.JSON(), nullable=False, server_default="{}"))



def downgrade() -> None:
    with op.batch_alter_table('clinical_handoffs', schema=None) as batch_op:
        batch_op.drop_column('detail')
        batch_op.drop_column('target')

    with op.batch_alter_table('alert_digest_items', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_digest_items_pending')

    op.drop_table('alert_digest_items')
