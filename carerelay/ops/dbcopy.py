"""Moving an installation from SQLite to PostgreSQL (``carerelay db copy``).

SQLite serves one process; a hospital that grows into several app nodes moves to PostgreSQL, and must
take everything along: 18 years of messages, the hash-chained audit log, pending escalation timers,
sessions. So the copy is exact and all-or-nothing:

- the source is read in one snapshot (a read transaction, so a still-running server cannot tear it);
- the target must be empty; it is brought to the schema head with the migrations, and every table is
  copied, in foreign-key order, inside ONE PostgreSQL transaction — a failure leaves it empty again;
- ids are copied as they are (audit entries, messages and escalation timers refer to each other by
  id), and every id sequence is then moved past the largest copied id, so new rows continue after them;
- append-only tables need no exception: their triggers refuse UPDATE and DELETE, never INSERT;
- search data is rebuilt by the target itself (PostgreSQL's generated ``search_vector``);
- row counts are compared table by table, the copy is recorded in the target's audit log
  (``ops.db_copy``), and the target's audit chain is verified before anything is committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, Connection, Engine, Table, bindparam, func, insert, inspect, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import READ_ONLY
from carerelay.core.errors import Conflict, Invalid
from carerelay.core.migrate import current_revision, head_revision, is_current, upgrade
from carerelay.schema import metadata

Progress = Callable[[str, int, int], None]
"""(stage, rows done, rows in total)."""

BATCH = 2000


@dataclass
class CopyReport:
    tables: dict[str, int] = field(default_factory=dict)
    sequences: dict[str, int] = field(default_factory=dict)
    audit_entries: int = 0

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


# Rows the migrations themselves write (a cache-version token): the target gets its own when it is
# migrated, and nothing in them is history to carry over.
MIGRATION_SEEDED = frozenset({"sched_lookup_version"})


def _tables() -> list[Table]:
    return [t for t in metadata.sorted_tables if t.name not in MIGRATION_SEEDED]


def safe_url(engine: Engine) -> str:
    return make_url(engine.url).render_as_string(hide_password=True)


def check_can_copy(*, source: Engine, target: Engine) -> None:
    """Refuse what would lose or mix data; each refusal says what to do instead."""
    if source.dialect.name != "sqlite":
        raise Invalid("the source must be the SQLite database (--from sqlite:///…)", field="from")
    if target.dialect.name != "postgresql":
        raise Invalid("the target must be a PostgreSQL database (--to postgresql://…)", field="to")
    if not is_current(source):
        raise Invalid(f"the source schema is at {current_revision(source)}, not {head_revision()}: "
                      "run 'carerelay db upgrade' on it first", field="from")
    existing = set(inspect(target).get_table_names())
    with target.connect() as conn:
        filled = [t.name for t in _tables() if t.name in existing
                  and conn.execute(select(func.count()).select_from(t)).scalar_one() > 0]
    if filled:
        shown = ", ".join(filled[:5]) + (f" and {len(filled) - 5} more" if len(filled) > 5 else "")
        raise Conflict(f"the target database is not empty ({shown} hold rows): copy into an empty database; "
                       "nothing was changed", field="to")


def _self_references(table: Table) -> list[str]:
    return [fk.parent.name for fk in table.foreign_keys if fk.column.table is table]


def _insert(table: Table) -> Any:
    """An INSERT whose JSON columns keep SQL NULL as NULL (not the JSON value null): the copy is exact."""
    values = {c.name: bindparam(f"v_{c.name}", type_=JSON(none_as_null=True) if isinstance(c.type, JSON) else c.type)
              for c in table.columns}
    return insert(table).values(values)


def _copy_table(src: Connection, dst: Connection, table: Table, done: int, total: int, progress: Progress) -> int:
    later = _self_references(table)  # a row may point at a row copied after it: set those links last
    pk = list(table.primary_key.columns)
    statement = _insert(table)
    links: list[dict[str, Any]] = []
    copied = 0
    result = src.execution_options(yield_per=BATCH).execute(select(table).order_by(*pk))
    for part in result.partitions():
        rows = []
        for row in part:
            values = dict(row._mapping)
            if later and any(values[name] is not None for name in later):
                links.append({**{f"k_{c.name}": values[c.name] for c in pk},
                              **{f"l_{name}": values[name] for name in later}})
                values.update(dict.fromkeys(later))
            rows.append({f"v_{name}": value for name, value in values.items()})
        try:
            dst.execute(statement, rows)
        except DBAPIError as exc:
            first = str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc)
            raise Invalid(f"table {table.name}: a row could not be copied ({first}); nothing was changed") from exc
        copied += len(rows)
        progress(table.name, done + copied, total)
    if links:
        relink = update(table).where(*[c == bindparam(f"k_{c.name}") for c in pk]).values(
            {name: bindparam(f"l_{name}") for name in later})
        dst.execute(relink, links)
    return copied


def _move_sequences(dst: Connection, report: CopyReport) -> None:
    """Each id sequence continues after the largest copied id."""
    for table in _tables():
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or not report.tables.get(table.name):
            continue
        column = pk[0].name
        sequence = dst.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                               {"t": table.name, "c": column}).scalar_one()
        if sequence is None:
            continue
        largest = dst.execute(select(func.max(pk[0]))).scalar_one()
        dst.execute(text("SELECT setval(:s, :v, true)"), {"s": sequence, "v": largest})
        report.sequences[table.name] = int(largest)


def copy_database(
    *, source: Engine, target: Engine, clock: Clock, actor: Actor, progress: Progress | None = None
) -> CopyReport:
    """Copy every table from ``source`` into the empty ``target``; raises (changing nothing) on any problem."""
    check_can_copy(source=source, target=target)
    upgrade(target)
    note = progress or (lambda stage, done, total: None)
    report = CopyReport()
    with source.connect().execution_options(**{READ_ONLY: True}) as src, src.begin():
        counts = {t.name: int(src.execute(select(func.count()).select_from(t)).scalar_one()) for t in _tables()}
        total = sum(counts.values())
        note("starting", 0, total)
        with target.begin() as dst:
            done = 0
            for table in _tables():
                if counts[table.name]:
                    report.tables[table.name] = _copy_table(src, dst, table, done, total, note)
                    done += report.tables[table.name]
            _move_sequences(dst, report)
            note("checking", done, total)
            _check_counts(dst, counts)
            session = Session(bind=dst)
            audit.record(session=session, clock=clock, actor=actor, action="ops.db_copy", object_type="database",
                         detail={"from": safe_url(source), "rows": report.rows, "tables": report.tables})
            audit.append_pending(session)
            chain = audit.verify_chain(session=session)
            if not chain.ok:
                raise Invalid(f"the copied audit chain does not verify ({chain.problem}); nothing was changed")
            report.audit_entries = chain.entries
            session.close()
    note("done", total, total)
    return report


def _check_counts(dst: Connection, counts: dict[str, int]) -> None:
    for table in _tables():
        copied = int(dst.execute(select(func.count()).select_from(table)).scalar_one())
        if copied != counts[table.name]:
            raise Invalid(f"table {table.name}: {copied} rows in the target, {counts[table.name]} in the source; "
                          "nothing was changed")
