"""nurse call, telemetry and paging: senders, recipient maps, rules, inbound messages, WCTP outbox

Revision ID: 0007_wctp
Revises: 0006_escalation
Create Date: 2026-12-01 08:31:03.669668
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_wctp"
down_revision: str | None = "0006_escalation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "paging_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("sender_id", sa.String(length=128), nullable=True),
        sa.Column("channel", sa.String(length=10), nullable=True),
        sa.Column("recipient_pattern", sa.String(length=200), nullable=True),
        sa.Column("text_pattern", sa.String(length=200), nullable=True),
        sa.Column("alert_kind", sa.String(length=40), nullable=False),
        sa.Column("priority", sa.String(length=10), nullable=True),
        sa.Column("tone", sa.String(length=40), nullable=True),
        sa.Column("choices", sa.JSON(), nullable=True),
        sa.Column("target", sa.String(length=500), nullable=True),
        sa.Column("escalation", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paging_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_paging_rules_name")),
    )
    op.create_table(
        "paging_senders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("code_salt", sa.String(length=32), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=True),
        sa.Column("reply_url", sa.String(length=500), nullable=True),
        sa.Column("reply_security_code", sa.String(length=128), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paging_senders")),
        sa.UniqueConstraint("sender_id", name=op.f("uq_paging_senders_sender_id")),
    )
    op.create_table(
        "paging_recipients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.String(length=128), nullable=False),
        sa.Column("recipient_key", sa.String(length=128), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("unit", sa.String(length=40), nullable=True),
        sa.Column("room", sa.String(length=20), nullable=True),
        sa.Column("bed", sa.String(length=20), nullable=True),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"], ["departments.id"], name=op.f("fk_paging_recipients_department_id_departments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paging_recipients")),
        sa.UniqueConstraint("recipient_key", name=op.f("uq_paging_recipients_recipient_key")),
    )
    op.create_table(
        "paging_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("peer", sa.String(length=100), nullable=True),
        sa.Column("operation", sa.String(length=40), nullable=True),
        sa.Column("sender_id", sa.String(length=128), nullable=True),
        sa.Column("recipient_id", sa.String(length=128), nullable=True),
        sa.Column("message_id", sa.String(length=32), nullable=True),
        sa.Column("transaction_id", sa.String(length=128), nullable=True),
        sa.Column("tracking_number", sa.String(length=32), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=False),
        sa.Column("priority_in", sa.String(length=10), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deliver_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deliver_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("allow_response", sa.Boolean(), nullable=False),
        sa.Column("notify_queued", sa.Boolean(), nullable=False),
        sa.Column("notify_delivered", sa.Boolean(), nullable=False),
        sa.Column("notify_read", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_text", sa.Text(), nullable=True),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=500), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_paging_messages_alert_id_alerts")),
        sa.ForeignKeyConstraint(["rule_id"], ["paging_rules.id"], name=op.f("fk_paging_messages_rule_id_paging_rules")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paging_messages")),
        sa.UniqueConstraint("tracking_number", name=op.f("uq_paging_messages_tracking_number")),
    )
    with op.batch_alter_table("paging_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_paging_messages_alert_id"), ["alert_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_paging_messages_received_at"), ["received_at"], unique=False)
        batch_op.create_index("ix_paging_messages_sender_message", ["sender_id", "message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_paging_messages_status"), ["status"], unique=False)

    op.create_table(
        "wctp_outbound",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("paging_message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sender_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("notification", sa.String(length=10), nullable=True),
        sa.Column("reply_text", sa.Text(), nullable=True),
        sa.Column("mcr", sa.Boolean(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("delivery", sa.String(length=6), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["paging_message_id"],
            ["paging_messages.id"],
            name=op.f("fk_wctp_outbound_paging_message_id_paging_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_wctp_outbound_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wctp_outbound")),
    )
    with op.batch_alter_table("wctp_outbound", schema=None) as batch_op:
        batch_op.create_index("ix_wctp_outbound_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_wctp_outbound_paging_message_id"), ["paging_message_id"], unique=False)
        batch_op.create_index("ix_wctp_outbound_sender_status", ["sender_id", "status", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("wctp_outbound", schema=None) as batch_op:
        batch_op.drop_index("ix_wctp_outbound_sender_status")
        batch_op.drop_index(batch_op.f("ix_wctp_outbound_paging_message_id"))
        batch_op.drop_index("ix_wctp_outbound_due")

    op.drop_table("wctp_outbound")
    with op.batch_alter_table("paging_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_paging_messages_status"))
        batch_op.drop_index("ix_paging_messages_sender_message")
        batch_op.drop_index(batch_op.f("ix_paging_messages_received_at"))
        batch_op.drop_index(batch_op.f("ix_paging_messages_alert_id"))

    op.drop_table("paging_messages")
    op.drop_table("paging_recipients")
    op.drop_table("paging_senders")
    op.drop_table("paging_rules")
