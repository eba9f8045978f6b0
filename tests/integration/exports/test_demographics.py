"""Demographic import: a CSV on the SFTP server, matched on the key field, unmatched rows reported."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.directory import service as directory
from tests.exports_helpers import make_connector, run_now
from tests.exports_peers import Sshd, running_sshd
from tests.scheduling_factories import person

EXTRACT = """unique_id,email,phone,pager,mobile,ms_upn,npi
U10004,amara.okafor@demo-health.example,x5004,5559004,,,
N777,,,5558777,+15550199777,,
U10005,,,,,,1234567890
ZZ999,nobody@demo-health.example,,,,,
,missing@demo-health.example,,,,,
"""


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with running_sshd(tmp_path_factory.mktemp("sftp-in")) as server:
        yield server


def test_import_updates_matching_people_only_and_reports_the_rest(db: Database, clock: FakeClock,
                                                                  sshd: Sshd) -> None:
    transport = sshd.transport("hr")
    (sshd.root / "hr" / "old_extract.csv").write_text("unique_id,email\nU10004,stale@x.example\n")
    (sshd.root / "hr" / "demographics_20261124.csv").write_text(EXTRACT)
    (sshd.root / "hr" / "readme.txt").write_text("not a csv")
    with db.unit_of_work() as session:
        connector = make_connector(session, clock, target="demographic_import", person_key="unique_id",
                                   transport=transport, trigger={"kind": "daily", "at": "05:00"},
                                   options={"pattern": "demographics_*.csv"})
        cid = connector.id
    run = run_now(db, clock, cid)
    assert run.status == "succeeded", run.error
    assert run.file_name == "demographics_20261124.csv" and run.payload == EXTRACT.encode()
    assert run.detail == {"rows": 5, "matched": 3, "updated": 2, "unchanged": 0, "unmatched": 2, "problems": 1}
    assert [p.get("reason") or p.get("problem") for p in run.problems] == [
        "no person with unique_id 'ZZ999'", "no key", "another person already has npi '1234567890'"]
    with db.unit_of_work() as session:
        okafor, nurse = person(session, "aokafor"), person(session, "cnurse")
        assert okafor.email == "amara.okafor@demo-health.example"
        points = {(p.kind, p.value, p.active) for p in directory.list_contact_points(session=session,
                                                                                      person_id=okafor.id)}
        assert {("phone", "x5004", True), ("pager", "5559004", True), ("phone", "x4004", True)} <= points
        nurse_points = {(p.kind, p.value) for p in directory.list_contact_points(session=session,
                                                                                  person_id=nurse.id) if p.active}
        assert {("pager", "5558777"), ("sms", "+15550199777")} <= nurse_points
        assert person(session, "dreyes").npi != "1234567890"  # Dr. House's NPI: refused, reported

    again = run_now(db, clock, cid)
    assert again.status == "nothing" and "already imported" in again.detail["note"]

    clock.advance(timedelta(days=1))
    (sshd.root / "hr" / "demographics_20261125.csv").write_text("unique_id,pager\nU10004,5559999\n")
    third = run_now(db, clock, cid)
    assert third.status == "succeeded" and third.detail["updated"] == 1
    with db.unit_of_work() as session:
        pagers = {(p.value, p.active) for p in directory.list_contact_points(
            session=session, person_id=person(session, "aokafor").id) if p.kind == "pager"}
    assert ("5559004", False) in pagers and ("5559999", True) in pagers and ("5557004", True) in pagers
