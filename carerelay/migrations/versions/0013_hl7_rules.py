"""hl7 presenting rules, hand-off targets, alert digests; scheduling lookup version

Hand-offs gain the target they are addressed to (``ordering`` for every row written before) and a
detail object; digests of presenting-patient alerts wait in ``alert_digest_items``.

Scheduling: ``sched_lookup_version`` holds one random token that triggers replace whenever a slot,
schedule or assignment is written, in the same transaction, so each node's in-process on-call cache
can check in one read that it still matches the database (scheduling/lookup.py). The first token is
random too, so two databases never share one.

Revision ID: 0013_hl7_rules
Revises: 0014_core_gaps
Create Date: 2026-12-01 08:30:19.821384
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_hl7_rules"
down_revision: str | None = "0014_core_gaps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOOKUP_TABLES = ("sched_slots", "sched_schedules", "sched_assignments")


def _lookup_version_triggers() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in LOOKUP_TABLES:
            for verb in ("INSERT", "UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_lookup_{verb.lower()} AFTER {verb} ON {table} BEGIN "
                           "UPDATE sched_lookup_version SET token = lower(hex(randomblob(16))) WHERE id = 1; END")
        return
    op.execute("CREATE OR REPLACE FUNCTION sched_lookup_bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
               "UPDATE sched_lookup_version SET token = md5(random()::text || clock_timestamp()::text) WHERE id = 1; "
               "RETURN NULL; END $$")
    for table in LOOKUP_TABLES:
        op.execute(f"CREATE TRIGGER {table}_lookup AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION sched_lookup_bump()")


def _drop_lookup_version_triggers() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in LOOKUP_TABLES:
            for verb in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_lookup_{verb}")
        return
    for table in LOOKUP_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_lookup ON {table}")
    op.execute("DROP FUNCTION IF EXISTS sched_lookup_bump()")


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

    op.create_table('sched_lookup_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sched_lookup_version'))
    )
    op.execute(f"INSERT INTO sched_lookup_version (id, token) VALUES (1, '{secrets.token_hex(16)}')")
    _lookup_version_triggers()



def downgrade() -> None:
    _drop_lookup_version_triggers()
    op.drop_table('sched_lookup_version')
    with op.batch_alter_table('clinical_handoffs', schema=None) as batch_op:
        batch_op.drop_column('detail')
        batch_op.drop_column('target')

    with op.batch_alter_table('alert_digest_items', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_digest_items_pending')

    op.drop_table('alert_digest_items')
