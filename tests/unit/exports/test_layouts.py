"""Golden files: each CSV layout built from the demo hospital's published schedule (24 Nov 2026).

A dry run builds exactly what a run would send; its payload is compared byte for byte with
tests/golden/exports/. Regenerate with CARERELAY_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from openpyxl import load_workbook

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.exports import runner
from tests.exports_helpers import ADMIN, CARD, GOLDEN, check_golden, folder, make_connector, map_codes

TWO_DAYS = {"past_days": 0, "future_days": 1}


def _dry(db: Database, clock: FakeClock, tmp_path: Path, mappings: dict[str, dict[str, object]],
         **values: object) -> bytes:
    with db.unit_of_work() as session:
        values.setdefault("transport", folder(tmp_path))
        connector = make_connector(session, clock, **values)
        map_codes(session, clock, connector, mappings)
        run = runner.dry_run(session=session, clock=clock, actor=ADMIN, connector_id=connector.id)
        assert run.status == "dry_run", run.error
        assert run.payload is not None
        return run.payload


def test_epic_on_call_finder(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    mappings: dict[str, dict[str, object]] = {
        code: {"team_id": "CARD-ONCALL", "team_name": "Cardiology On Call", "role": "Cardiologist",
               "note_prefix": "carerelay:", "team_comment": "Call the switchboard if no answer"} for code in CARD}
    payload = _dry(db, clock, tmp_path, mappings, target="epic_on_call_finder", departments=["CARD"],
                   options={**TWO_DAYS, "placeholder_id": "TBD"})
    check_golden("epic_on_call_finder.csv", payload)


def test_epic_optime(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    mappings: dict[str, dict[str, object]] = {
        "HOSP-DAY": {"import_group": "MAIN-HOSP", "role": "Hospitalist"},
        "HOSP-NIGHT": {"import_group": "MAIN-HOSP", "role": "Nocturnist"},
        "NEURO-CALL": {"import_group": "EAST-NEURO", "role": "Neurologist"}}
    payload = _dry(db, clock, tmp_path, mappings, target="epic_optime", departments=["HOSP", "NEURO"],
                   options={"future_days": 0, "output_timezone": "America/Chicago"})
    check_golden("epic_optime.csv", payload)


def test_kronos_workforce_central(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    mappings: dict[str, dict[str, object]] = {code: {"pay_code": "CALL"} for code in CARD}
    mappings["HOSP-DAY"] = mappings["HOSP-NIGHT"] = {"pay_code": "REG"}
    payload = _dry(db, clock, tmp_path, mappings, target="kronos_wfc", departments=["CARD", "HOSP"],
                   trigger={"kind": "pay_period", "anchor": "2026-11-23", "length_days": 2},
                   options={"department_ids": {"CARD": "1001", "HOSP": "1002"},
                            "include": {"non_exempt": ["shift", "call"], "exempt": ["shift", "call"]}})
    check_golden("kronos_wfc.csv", payload)


def test_kronos_workforce_dimensions(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    base: dict[str, object] = {"segment_type": "Required", "comment": "carerelay schedule",
                               "business_structure": "MAIN/CARD", "labor_categories": ["Cardiology", "Call"],
                               "pay_code_edit": "ONCALL"}
    mappings: dict[str, dict[str, object]] = {code: base for code in CARD}
    payload = _dry(db, clock, tmp_path, mappings, target="kronos_wfd", departments=["CARD"],
                   trigger={"kind": "pay_period", "anchor": "2026-11-23", "length_days": 2},
                   options={"include": {"exempt": ["call"], "non_exempt": ["call"]},
                            "labor_category_delimiter": ";"})
    check_golden("kronos_wfd.csv", payload)


def test_new_innovations(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    mappings: dict[str, dict[str, object]] = {
        code: {"duty_hour_name": "In-house call", "assignment_name": "Cardiology", "location": "Main Hospital"}
        for code in CARD}
    payload = _dry(db, clock, tmp_path, mappings, target="new_innovations", departments=["CARD"], options=TWO_DAYS)
    check_golden("new_innovations.csv", payload)


def test_schedule_backup_csv(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    payload = _dry(db, clock, tmp_path, {}, target="schedule_backup", departments=["CARD", "NEURO"],
                   options={"days": 1})
    check_golden("schedule_backup.csv", payload)


def test_schedule_backup_xlsx_holds_the_same_rows(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    payload = _dry(db, clock, tmp_path, {}, target="schedule_backup", departments=["CARD", "NEURO"],
                   options={"days": 1, "format": "xlsx"}, name="backup-xlsx")
    sheet = load_workbook(io.BytesIO(payload)).active
    rows = [[("" if v is None else str(v)) for v in row] for row in sheet.iter_rows(values_only=True)]
    csv_rows = list(csv.reader(io.StringIO((GOLDEN / "schedule_backup.csv").read_text())))
    assert rows == csv_rows
    assert sheet.freeze_panes == "A2"
