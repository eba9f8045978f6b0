"""`carerelay schedule …`: a scheduler builds, imports, publishes, changes and looks up from the CLI
(in-process, against a fresh database on SQLite and on PostgreSQL)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from carerelay.cli import app
from carerelay.core.actor import cli_actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.directory.models import Department
from carerelay.scheduling.models import Slot
from tests.scheduling_factories import make_department, make_person

runner = CliRunner()


@pytest.fixture
def schedule_db(cli_db: Database) -> Database:
    """A fresh database (SQLite or PostgreSQL) with one department in New York and three people."""
    clock = FakeClock()
    with cli_db.unit_of_work() as session:
        dept = make_department(session, clock, code="CLI", timezone="America/New_York")
        for name in ("alice", "bob", "carol"):
            make_person(session, clock, username=name, department_id=dept.id)
    return cli_db


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["schedule", *args])
    return result.exit_code, result.output


def _slots(db: Database) -> int:
    with db.unit_of_work() as session:
        return session.execute(select(func.count()).select_from(Slot)).scalar_one()


def test_build_import_publish_change_and_look_up(schedule_db: Database, tmp_path: Path) -> None:
    code, output = _run("assignment-add", "CLI", "CLI-NIGHT", "Night Call", "--start", "19:00", "--end", "07:00",
                        "--actor", "sam")
    assert code == 0, output
    assert _run("assignment-add", "CLI", "CLI-DAY", "Day Call", "--start", "07:00", "--end", "19:00")[0] == 0
    code, output = _run("create", "CLI", "--from", "2027-11-01", "--to", "2027-11-30")
    assert code == 0 and "schedule 1 (draft)" in output
    rows = ["date,assignment,person"] + [f"2027-11-{d:02d},CLI-NIGHT,{'alice' if d % 2 else 'bob'}"
                                         for d in range(1, 31)]
    good = tmp_path / "november.csv"
    good.write_text("\n".join(rows) + "\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*rows, "2027-11-07,CLI-NIGHT,zed", "2027-11-31,CLI-NIGHT,alice"]) + "\n")
    code, output = _run("import", "1", str(bad))
    assert code == 1
    assert "unknown person 'zed'" in output and "nothing imported (2 errors)" in output
    assert "32" in output and "person" in output and "date" in output
    assert _slots(schedule_db) == 0
    code, output = _run("import", "1", str(good))
    assert code == 0 and "imported 30 of 30 rows" in output, output
    code, output = _run("publish", "1", "--actor", "sam")
    assert code == 0 and "version 1 (30 slots)" in output
    # Fall-back night in New York: 01:30 EST (06:30Z) is still the night of 6 November (bob).
    code, output = _run("who", "--department", "CLI", "--at", "2027-11-07T06:30:00Z")
    assert code == 0
    assert "Bob Test — Night Call — slot 2027-11-06 19:00–2027-11-07 07:00 America/New_York, call order 1" in output
    code, output = _run("add", "1", "2027-11-06", "CLI-DAY", "--person", "bob")
    assert code == 0, output
    with schedule_db.unit_of_work() as session:  # PostgreSQL sequences keep what the refused import took
        first = session.execute(select(Slot.id).where(Slot.on_date == date(2027, 11, 1))).scalar_one()
    code, output = _run("change", str(first), "--person", "carol", "--actor", "sam")
    assert code == 0 and "carol" in output
    code, output = _run("changes", "1")
    assert code == 0 and "slot.add" in output and "slot.update" in output and "sam" in output
    code, output = _run("show", "1")
    assert code == 0 and "published, version 1 (America/New_York)" in output
    assert "carol" in output and "CLI-DAY" in output


def test_refusals_name_the_field_and_exit_1(schedule_db: Database) -> None:
    assert _run("assignment-add", "CLI", "CLI-EARLY", "Early", "--start", "02:30", "--end", "09:00")[0] == 0
    assert _run("create", "CLI", "--from", "2027-03-01", "--to", "2027-03-31")[0] == 0
    code, output = _run("add", "1", "2027-03-14", "CLI-EARLY", "--person", "alice")
    assert code == 1 and "start_time: 2027-03-14 02:30 does not exist in America/New_York" in output
    code, output = _run("create", "CLI", "--from", "2027-05-10", "--to", "2027-05-01")
    assert code == 1 and "ends_on:" in output
    code, output = _run("add", "1", "2027-03-02", "CLI-NOPE", "--person", "alice")
    assert code == 1 and "assignment: no assignment 'CLI-NOPE'" in output
    code, output = _run("who", "--department", "CLI", "--at", "2027-03-02T10:00:00")
    assert code == 1 and "at:" in output
    assert _slots(schedule_db) == 0


def test_sync_reports_each_source_and_exits_1_when_one_failed(schedule_db: Database) -> None:
    from carerelay.scheduling.sync import engine
    from tests.integration.scheduling_sync.vendors import vendor_server

    with vendor_server() as (base_url, _state):
        with schedule_db.unit_of_work() as session:
            dept = session.execute(select(Department).where(Department.code == "CLI")).scalar_one()
            engine.create_source(session=session, clock=FakeClock(), actor=cli_actor("test"), vendor="qgenda",
                                 name="no password", department_id=dept.id, base_url=f"{base_url}/v2",
                                 account="CK-1")
        code, output = _run("sync", "--due")
        assert code == 1 and "source 1: failed" in output and "login refused (401)" in output
        assert _run("sync", "--due") == (0, "")  # pulled less than 15 minutes ago


def test_import_with_partial_keeps_the_good_rows_and_reports_the_rest(schedule_db: Database, tmp_path: Path) -> None:
    assert _run("assignment-add", "CLI", "CLI-DAY", "Day Call", "--start", "07:00", "--end", "19:00")[0] == 0
    assert _run("create", "CLI", "--from", "2027-02-01", "--to", "2027-02-28")[0] == 0
    mixed = tmp_path / "february.csv"
    mixed.write_text("\n".join([
        "date,assignment,person",
        "2027-02-01,CLI-DAY,alice",
        "2027-02-02,CLI-DAY,zed",  # unknown person
        "2027-02-03,CLI-DAY,bob",
        "2027-02-30,CLI-DAY,carol",  # no such date
        "2027-02-04,CLI-DAY,carol",
    ]) + "\n")
    code, output = _run("import", "1", str(mixed))
    assert code == 1 and "nothing imported (2 errors)" in output and _slots(schedule_db) == 0
    code, output = _run("import", "1", str(mixed), "--partial")
    assert code == 1, output  # rows were refused: still a failure for a script, but the good ones stay
    assert "imported 3 of 5 rows" in output and "unknown person 'zed'" in output
    assert "3" in output and "5" in output  # the refused rows are named by number (header is row 1)
    assert _slots(schedule_db) == 3
    with schedule_db.unit_of_work() as session:
        people = sorted(session.execute(select(Slot.on_date)).scalars())
    assert [d.day for d in people] == [1, 3, 4]
