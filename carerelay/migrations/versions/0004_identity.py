"""identity

Revision ID: 0004_identity
Revises: 0001_foundation
Create Date: 2026-11-24 12:46:01.401913
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_identity"
down_revision: str | None = "0003_scheduling"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "ldap_sync_state",
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("watermark", sa.String(length=40), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_full_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_ldap_sync_state")),
    )
    op.create_table(
        "scim_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=80), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scim_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_scim_tokens_token_hash")),
    )
    with op.batch_alter_table("scim_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scim_tokens_provider"), ["provider"], unique=False)

    op.create_table(
        "sso_login_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=60), nullable=False),
        sa.Column("nonce", sa.String(length=120), nullable=True),
        sa.Column("code_verifier", sa.String(length=160), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_login_states")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_sso_login_states_state_hash")),
    )
    op.create_table(
        "sso_seen_assertions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=60), nullable=False),
        sa.Column("assertion_id", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_seen_assertions")),
        sa.UniqueConstraint("provider", "assertion_id", name="uq_sso_seen_assertions_provider_id"),
    )
    op.create_table(
        "ldap_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("entry_key", sa.String(length=120), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("dn", sa.String(length=1000), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deactivated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_ldap_links_person_id_people"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ldap_links")),
        sa.UniqueConstraint("person_id", name=op.f("uq_ldap_links_person_id")),
        sa.UniqueConstraint("source", "entry_key", name="uq_ldap_links_source_entry_key"),
    )
    op.create_table(
        "scim_resources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_type", sa.String(length=10), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("provider", sa.String(length=80), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("display_name", sa.String(length=250), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_scim_resources_group_id_groups"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_scim_resources_person_id_people"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scim_resources")),
        sa.UniqueConstraint("group_id", name=op.f("uq_scim_resources_group_id")),
        sa.UniqueConstraint("person_id", name=op.f("uq_scim_resources_person_id")),
    )
    with op.batch_alter_table("scim_resources", schema=None) as batch_op:
        batch_op.create_index("ix_scim_resources_type_external_id", ["resource_type", "external_id"], unique=False)

    op.create_table(
        "sso_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=60), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_sso_identities_person_id_people"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_identities")),
        sa.UniqueConstraint("provider", "subject", name="uq_sso_identities_provider_subject"),
    )
    with op.batch_alter_table("sso_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sso_identities_person_id"), ["person_id"], unique=False)

    op.create_table(
        "device_bindings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("auth_session_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=120), nullable=True),
        sa.ForeignKeyConstraint(
            ["auth_session_id"],
            ["auth_sessions.id"],
            name=op.f("fk_device_bindings_auth_session_id_auth_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_device_bindings_device_id_devices")),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_device_bindings_person_id_people"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_bindings")),
        sa.UniqueConstraint("auth_session_id", name=op.f("uq_device_bindings_auth_session_id")),
    )
    with op.batch_alter_table("device_bindings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_device_bindings_device_id"), ["device_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_device_bindings_person_id"), ["person_id"], unique=False)

    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("pin_failures", sa.Integer(), server_default="0", nullable=False))

    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pin_hash", sa.String(length=200), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.drop_column("pin_hash")

    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.drop_column("pin_failures")
        batch_op.drop_column("locked_at")

    with op.batch_alter_table("device_bindings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_bindings_person_id"))
        batch_op.drop_index(batch_op.f("ix_device_bindings_device_id"))

    op.drop_table("device_bindings")
    with op.batch_alter_table("sso_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sso_identities_person_id"))

    op.drop_table("sso_identities")
    with op.batch_alter_table("scim_resources", schema=None) as batch_op:
        batch_op.drop_index("ix_scim_resources_type_external_id")

    op.drop_table("scim_resources")
    op.drop_table("ldap_links")
    op.drop_table("sso_seen_assertions")
    op.drop_table("sso_login_states")
    with op.batch_alter_table("scim_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scim_tokens_provider"))

    op.drop_table("scim_tokens")
    op.drop_table("ldap_sync_state")
