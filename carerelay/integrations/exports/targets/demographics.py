"""Demographic import: the HR or EHR extract dropped on an SFTP folder each day, matched on the key field.

Only people that match are touched, and only the columns the file has: e-mail, phone, mobile,
pager and the external id fields. An empty cell leaves the value alone. Phones and pagers become
contact points labelled "demographic import"; a new number replaces the one the import set before
(deactivated, never deleted), numbers people or administrators entered stay. Every change goes
through the directory service (so it is checked and audited); a row that cannot be applied (an id
another person already has) is reported with the reason, like an unmatched row, and the rest go on.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field
from sqlalchemy.orm import Session

from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import CarerelayError
from carerelay.core.schemas import Input
from carerelay.directory import service as directory
from carerelay.directory.models import EXTERNAL_ID_FIELDS, Person
from carerelay.integrations.exports.base import ExportError, Target

IMPORT_LABEL = "demographic import"
CONTACT_COLUMNS = {"phone": "phone", "mobile": "sms", "pager": "pager"}
UPDATABLE = ("email", *EXTERNAL_ID_FIELDS)


class DemographicOptions(Input):
    pattern: str = Field(default="*.csv", min_length=1, max_length=100, description="File names to pick up")
    key_column: str | None = Field(default=None, max_length=60,
                                   description="Column holding the key (default: the key field's name)")
    encoding: str = Field(default="utf-8-sig", max_length=30)


@dataclass
class ImportReport:
    rows: int = 0
    matched: int = 0
    updated: int = 0
    unchanged: int = 0
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"rows": self.rows, "matched": self.matched, "updated": self.updated, "unchanged": self.unchanged,
                "unmatched": len(self.unmatched), "problems": len(self.problems)}


class DemographicImport(Target):
    name = "demographic_import"
    label = "Demographic import (inbound CSV)"
    direction = "inbound"
    default_person_key = "unique_id"
    default_trigger: ClassVar[dict[str, Any]] = {"kind": "daily", "at": "05:00"}
    options_model = DemographicOptions
    mapping_model = None
    needs_person = False

    def apply(self, *, session: Session, clock: Clock, actor: Actor, key_field: str, options: DemographicOptions,
              data: bytes) -> ImportReport:
        try:
            text = data.decode(options.encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise ExportError(f"the file is not {options.encoding} text: {exc}", retryable=False) from exc
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip() for h in reader.fieldnames or []]
        key_column = options.key_column or key_field
        if key_column not in header:
            raise ExportError(f"the file has no {key_column!r} column (columns: {', '.join(header)})",
                              retryable=False)
        report = ImportReport()
        for number, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            report.rows += 1
            key = row.get(key_column, "")
            person = directory.find_person_by(session=session, field=key_field, value=key) if key else None
            if person is None:
                report.unmatched.append({"row": number, key_column: key,
                                         "reason": "no key" if not key else f"no person with {key_field} {key!r}"})
                continue
            report.matched += 1
            try:
                with session.begin_nested():
                    changed = _apply_row(session, clock, actor, person, row, key_field)
            except CarerelayError as exc:
                report.problems.append({"row": number, key_column: key, "field": exc.field, "problem": exc.message})
                continue
            if changed:
                report.updated += 1
            else:
                report.unchanged += 1
        return report


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _apply_row(session: Session, clock: Clock, actor: Actor, person: Person, row: dict[str, str],
               key_field: str) -> bool:
    changes = {name: row[name] for name in UPDATABLE
               if name != key_field and row.get(name) and row[name] != getattr(person, name)}
    if changes:
        directory.update_person(session=session, clock=clock, actor=actor, person_id=person.id, changes=changes)
    touched = bool(changes)
    for column, kind in CONTACT_COLUMNS.items():
        value = row.get(column)
        if value:
            touched = _set_contact(session, clock, actor, person.id, kind, value) or touched
    return touched


def _set_contact(session: Session, clock: Clock, actor: Actor, person_id: int, kind: str, value: str) -> bool:
    points = [p for p in directory.list_contact_points(session=session, person_id=person_id) if p.kind == kind]
    existing = next((p for p in points if p.value == value), None)
    changed = False
    for point in points:
        if point.label == IMPORT_LABEL and point.active and point.value != value:
            directory.set_contact_point_active(session=session, clock=clock, actor=actor, person_id=person_id,
                                               contact_point_id=point.id, active=False)
            changed = True
    if existing is None:
        directory.add_contact_point(session=session, clock=clock, actor=actor, person_id=person_id, kind=kind,
                                    value=value, label=IMPORT_LABEL)
        return True
    if not existing.active:
        directory.set_contact_point_active(session=session, clock=clock, actor=actor, person_id=person_id,
                                           contact_point_id=existing.id, active=True)
        return True
    return changed
