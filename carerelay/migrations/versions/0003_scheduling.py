"""scheduling

Revision ID: 0003_scheduling
Revises: 0001_foundation
Create Date: 2026-11-24 12:49:41.475193
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from carerelay.migrations.guards import drop_refusal, refuse_changes

revision: str = "0003_scheduling"
down_revision: str | None = "0002_messaging"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sched_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=60), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("start_time", sa.Time(), nullable=False),
        sa.Column("end_time", sa.Time(), nullable=False),
        sa.Column("call_order", sa.Integer(), nullable=False),
        sa.Column("allow_overlap", sa.Boolean(), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"], ["departments.id"], name=op.f("fk_sched_assignments_department_id_departments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sched_assignments")),
        sa.UniqueConstraint("code", name=op.f("uq_sched_assignments_code")),
    )
    with op.batch_alter_table("sched_assignments", schema=None) as batch_op:
        batch_op.create_index("ix_sched_assignments_department", ["department_id"], unique=False)

    op.create_table(
        "sched_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"], ["departments.id"], name=op.f("fk_sched_schedules_department_id_departments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sched_schedules")),
    )
    with op.batch_alter_table("sched_schedules", schema=None) as batch_op:
        batch_op.create_index("ix_sched_schedules_department_dates", ["department_id", "starts_on"], unique=False)

    op.create_table(
        "sched_sync_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vendor", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=False),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=True),
        sa.Column("secret_env", sa.String(length=100), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"], ["departments.id"], name=op.f("fk_sched_sync_sources_department_id_departments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sched_sync_sources")),
    )
    op.create_table(
        "sched_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("after_version", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["schedule_id"], ["sched_schedules.id"], name=op.f("fk_sched_changes_schedule_id_sched_schedules")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sched_changes")),
    )
    with op.batch_alter_table("sched_changes", schema=None) as batch_op:
        batch_op.create_index("ix_sched_changes_schedule_id", ["schedule_id", "id"], unique=False)

    op.create_table(
        "sched_cross_credentials",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("granted_by", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["departments.id"],
            name=op.f("fk_sched_cross_credentials_department_id_departments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_sched_cross_credentials_person_id_people"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("person_id", "department_id", name=op.f("pk_sched_cross_credentials")),
    )
    with op.batch_alter_table("sched_cross_credentials", schema=None) as batch_op:
        batch_op.create_index("ix_sched_cross_credentials_department", ["department_id"], unique=False)

    op.create_table(
        "sched_slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("on_date", sa.Date(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("placeholder_name", sa.String(length=200), nullable=True),
        sa.Column("placeholder_contact", sa.String(length=60), nullable=True),
        sa.Column("notes", sa.String(length=1000), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("external_key", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"], ["sched_assignments.id"], name=op.f("fk_sched_slots_assignment_id_sched_assignments")
        ),
        sa.ForeignKeyConstraint(
            ["department_id"], ["departments.id"], name=op.f("fk_sched_slots_department_id_departments")
        ),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_sched_slots_person_id_people")),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["sched_schedules.id"],
            name=op.f("fk_sched_slots_schedule_id_sched_schedules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sched_slots")),
        sa.UniqueConstraint("external_key", name=op.f("uq_sched_slots_external_key")),
    )
    with op.batch_alter_table("sched_slots", schema=None) as batch_op:
        batch_op.create_index("ix_sched_slots_assignment_start", ["assignment_id", "starts_at"], unique=False)
        batch_op.create_index("ix_sched_slots_department_start", ["department_id", "starts_at"], unique=False)
        batch_op.create_index("ix_sched_slots_person_start", ["person_id", "starts_at"], unique=False)
        batch_op.create_index("ix_sched_slots_schedule_date", ["schedule_id", "on_date"], unique=False)
        batch_op.create_index("ix_sched_slots_start", ["starts_at"], unique=False)

    op.create_table(
        "sched_sync_assignment_map",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=120), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["sched_assignments.id"],
            name=op.f("fk_sched_sync_assignment_map_assignment_id_sched_assignments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sched_sync_sources.id"],
            name=op.f("fk_sched_sync_assignment_map_source_id_sched_sync_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("source_id", "external_id", name=op.f("pk_sched_sync_assignment_map")),
    )
    op.create_table(
        "sched_sync_person_map",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=120), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_sched_sync_person_map_person_id_people"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sched_sync_sources.id"],
            name=op.f("fk_sched_sync_person_map_source_id_sched_sync_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("source_id", "external_id", name=op.f("pk_sched_sync_person_map")),
    )
    op.create_table(
        "sched_sync_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("fetched", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.Column("unmapped", sa.JSON(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sched_sync_sources.id"],
            name=op.f("fk_sched_sync_runs_source_id_sched_sync_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sched_sync_runs")),
    )
    with op.batch_alter_table("sched_sync_runs", schema=None) as batch_op:
        batch_op.create_index("ix_sched_sync_runs_source", ["source_id", "started_at"], unique=False)

    op.create_table(
        "sched_time_off",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_sched_time_off_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sched_time_off")),
    )
    with op.batch_alter_table("sched_time_off", schema=None) as batch_op:
        batch_op.create_index("ix_sched_time_off_person", ["person_id", "starts_on"], unique=False)

    op.create_table(
        "sched_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(length=200), nullable=False),
        sa.Column("published_by_id", sa.Integer(), nullable=True),
        sa.Column("slots", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["schedule_id"], ["sched_schedules.id"], name=op.f("fk_sched_versions_schedule_id_sched_schedules")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sched_versions")),
    )
    with op.batch_alter_table("sched_versions", schema=None) as batch_op:
        batch_op.create_index("ix_sched_versions_schedule_version", ["schedule_id", "version"], unique=True)

    op.create_table(
        "sched_swaps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column("other_slot_id", sa.Integer(), nullable=True),
        sa.Column("from_person_id", sa.Integer(), nullable=True),
        sa.Column("to_person_id", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["from_person_id"], ["people.id"], name=op.f("fk_sched_swaps_from_person_id_people")),
        sa.ForeignKeyConstraint(
            ["other_slot_id"],
            ["sched_slots.id"],
            name=op.f("fk_sched_swaps_other_slot_id_sched_slots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["slot_id"], ["sched_slots.id"], name=op.f("fk_sched_swaps_slot_id_sched_slots"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["to_person_id"], ["people.id"], name=op.f("fk_sched_swaps_to_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sched_swaps")),
    )
    with op.batch_alter_table("sched_swaps", schema=None) as batch_op:
        batch_op.create_index("ix_sched_swaps_status", ["status"], unique=False)
    refuse_changes("sched_versions", "published schedule versions are append-only")
    refuse_changes("sched_changes", "the schedule change log is append-only")


def downgrade() -> None:
    drop_refusal("sched_changes")
    drop_refusal("sched_versions")
    with op.batch_alter_table("sched_swaps", schema=None) as batch_op:
        batch_op.drop_index("ix_sched_swaps_status")

    op.drop_table("sched_swaps")
    with op.batch_alter_table("sched_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_sched_versions_schedule_version")

    op.drop_table("sched_versions")
    with op.batch_alter_table("sched_time_off", schema=None) as batch_op:
        batch_op.drop_index("ix_sched_time_off_person")

    op.drop_table("sched_time_off")
    with op.batch_alter_table("sched_sync_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_sched_sync_runs_source")

    op.drop_table("sched_sync_runs")
    op.drop_table("sched_sync_person_map")
    op.drop_table("sched_sync_assignment_map")
    with op.batch_alter_table("sched_slots", schema=None) as batch_op:
        batch_op.drop_index("ix_sched_slots_start")
        batch_op.drop_index("ix_sched_slots_schedule_date")
        batch_op.drop_index("ix_sched_slots_person_start")
        batch_op.drop_index("ix_sched_slots_department_start")
        batch_op.drop_index("ix_sched_slots_assignment_start")

    op.drop_table("sched_slots")
    with op.batch_alter_table("sched_cross_credentials", schema=None) as batch_op:
        batch_op.drop_index("ix_sched_cross_credentials_department")

    op.drop_table("sched_cross_credentials")
    with op.batch_alter_table("sched_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_sched_changes_schedule_id")

    op.drop_table("sched_changes")
    op.drop_table("sched_sync_sources")
    with op.batch_alter_table("sched_schedules", schema=None) as batch_op:
        batch_op.drop_index("ix_sched_schedules_department_dates")

    op.drop_table("sched_schedules")
    with op.batch_alter_table("sched_assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_sched_assignments_department")

    op.drop_table("sched_assignments")
