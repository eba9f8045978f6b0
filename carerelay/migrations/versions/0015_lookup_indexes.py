"""scheduling: the on-call lookup's slot indexes cover what it reads (PostgreSQL)

``ix_sched_slots_assignment_start`` and ``ix_sched_slots_department_start`` gain, on PostgreSQL,
the other columns the lookup reads (``INCLUDE``), so loading a 28-day bucket is an index-only scan
that does not depend on where the rows lie in the table. Without it, PostgreSQL's default costs
(``random_page_cost = 4``) chose the plain ``starts_at`` index for a department's bucket when the
slots were written day by day across departments, and filtered 8,400 rows to keep 140 (2–15 ms
instead of 0.3 ms; docs/subsystems/performance.md). SQLite has no ``INCLUDE`` and already picks
the composite indexes: nothing changes there.

Revision ID: 0015_lookup_indexes
Revises: 0010_web
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015_lookup_indexes"
down_revision: str | None = "0010_web"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READ_BY_LOOKUP = ["id", "schedule_id", "person_id", "ends_at", "placeholder_name", "placeholder_contact"]
INDEXES = {"ix_sched_slots_assignment_start": ("assignment_id", "department_id"),
           "ix_sched_slots_department_start": ("department_id", "assignment_id")}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, (key, other) in INDEXES.items():
        op.drop_index(name, table_name="sched_slots")
        op.create_index(name, "sched_slots", [key, "starts_at"], postgresql_include=[other, *READ_BY_LOOKUP])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, (key, _other) in INDEXES.items():
        op.drop_index(name, table_name="sched_slots")
        op.create_index(name, "sched_slots", [key, "starts_at"])
