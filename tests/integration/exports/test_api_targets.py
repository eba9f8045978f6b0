"""Outlook through a local Microsoft Graph, a clinical-collaboration partner and AnesthesiaGo, errors included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta

import pytest

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.directory import service as directory
from carerelay.integrations.exports import runner
from carerelay.jobs import service as jobs
from carerelay.scheduling import service as scheduling
from carerelay.scheduling.models import Slot
from tests.exports_helpers import ADMIN, CARD, get_run, make_connector, map_codes, run_now
from tests.exports_peers import FakeAnesthesiaGo, FakeGraph, FakePartner
from tests.scheduling_factories import person

DOMAIN = "demo-health.example"
TONIGHT = date(2026, 11, 24)


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGraph]:
    monkeypatch.setenv("TEST_GRAPH_SECRET", FakeGraph.SECRET)
    users = {f"{u}@{DOMAIN}" for u in ("aokafor", "dreyes", "pnatarajan", "tlindqvist", "jwilson", "ecole")}
    server = FakeGraph(users)
    yield server
    server.close()


def _night_slot(db: Database, code: str = "CARD-CALL1-NIGHT") -> Slot:
    with db.unit_of_work() as session:
        assignment = scheduling.find_assignment(session=session, code=code)
        assert assignment is not None
        schedule = scheduling.find_schedule(session=session, department_id=assignment.department_id,
                                            on_date=TONIGHT)
        assert schedule is not None
        slot = next(s for s in scheduling.list_slots(session=session, schedule_id=schedule.id, on_date=TONIGHT)
                    if s.assignment_id == assignment.id)
        session.expunge(slot)
        return slot


def _give(db: Database, clock: FakeClock, slot_id: int, username: str, notes: str | None = None) -> None:
    with db.unit_of_work() as session:
        scheduling.update_slot(session=session, clock=clock, actor=ADMIN, slot_id=slot_id,
                               fields=scheduling.SlotFields(person_id=person(session, username).id, notes=notes))


def _outlook(db: Database, clock: FakeClock, graph: FakeGraph, **mapping: object) -> int:
    with db.unit_of_work() as session:
        connector = make_connector(session, clock, target="outlook", departments=["CARD"],
                                   transport=graph.transport(), options={"past_days": 0, "future_days": 0})
        fields = {"include_schedule_notes": True, **mapping}
        map_codes(session, clock, connector, {"CARD-CALL1-DAY": fields, "CARD-CALL1-NIGHT": fields,
                                              "CARD-CALL2-DAY": {"send_to_outlook": False}})
        return connector.id


def test_outlook_events_are_created_moved_on_a_swap_updated_and_deleted(
    db: Database, clock: FakeClock, graph: FakeGraph
) -> None:
    cid = _outlook(db, clock, graph, send_as_free=True)
    first = run_now(db, clock, cid)
    assert first.status == "succeeded", first.error
    assert first.excluded == [] and {u["code"] for u in first.unmapped} == {"CARD-CALL2-DAY", "CARD-CALL2-NIGHT"}
    reyes = graph.calendar(f"dreyes@{DOMAIN}")
    assert [(e["subject"], e["start"], e["showAs"]) for e in reyes] == [
        ("Cardiology On Call", {"dateTime": "2026-11-25T01:00:00", "timeZone": "UTC"}, "free")]
    assert "Call order: 1" in reyes[0]["body"]["content"]
    assert len(graph.events) == 2  # today's day call (ecole) and tonight's (dreyes)

    night = _night_slot(db)
    _give(db, clock, night.id, "tlindqvist", notes="covering for Dr. Reyes")
    swapped = run_now(db, clock, cid)
    assert swapped.status == "succeeded", swapped.error
    assert graph.calendar(f"dreyes@{DOMAIN}") == []
    moved = graph.calendar(f"tlindqvist@{DOMAIN}")
    assert len(moved) == 1 and "Notes: covering for Dr. Reyes" in moved[0]["body"]["content"]
    methods = [c["method"] for c in json.loads(swapped.payload or b"{}")["calls"]]
    assert methods == ["POST", "POST", "DELETE"]  # token, the taker's event, then the giver's removed

    _give(db, clock, night.id, "tlindqvist", notes="bring the echo report")
    updated = run_now(db, clock, cid)
    assert [e["id"] for e in graph.calendar(f"tlindqvist@{DOMAIN}")] == [moved[0]["id"]]  # patched in place
    assert "bring the echo report" in graph.calendar(f"tlindqvist@{DOMAIN}")[0]["body"]["content"]
    assert updated.row_count == 1

    with db.unit_of_work() as session:
        scheduling.remove_slot(session=session, clock=clock, actor=ADMIN, slot_id=night.id)
    run_now(db, clock, cid)
    assert graph.calendar(f"tlindqvist@{DOMAIN}") == []

    quiet = run_now(db, clock, cid)
    assert quiet.status == "nothing"  # nothing changed: Graph is not called at all


def test_graph_rate_limit_waits_for_retry_after_then_finishes_without_duplicates(
    db: Database, clock: FakeClock, graph: FakeGraph
) -> None:
    cid = _outlook(db, clock, graph)
    graph.throttle_on = {2: 17}  # the second events request answers 429 with Retry-After: 17
    run = run_now(db, clock, cid)
    assert run.status == "retrying" and "429" in (run.error or "")
    assert run.next_attempt_at is not None and run.next_attempt_at - clock.now() == timedelta(seconds=17)
    assert len(graph.events) == 1
    clock.advance(seconds=17)
    jobs.fire_due(db=db, clock=clock)
    runner.send_due(db=db, clock=clock)
    assert get_run(db, run.id).status == "succeeded"
    assert len(graph.events) == 2  # the first event was not created twice


def test_a_person_graph_does_not_know_fails_the_run_but_the_others_get_their_events(
    db: Database, clock: FakeClock, graph: FakeGraph
) -> None:
    with db.unit_of_work() as session:
        directory.update_person(session=session, clock=clock, actor=ADMIN, person_id=person(session, "dreyes").id,
                                changes={"ms_upn": f"dreyse@{DOMAIN}"})  # a mistyped UPN
    cid = _outlook(db, clock, graph)
    run = run_now(db, clock, cid)
    assert run.status == "failed" and f"The requested user 'dreyse@{DOMAIN}' is invalid" in (run.error or "")
    assert [p["upn"] for p in run.problems] == [f"dreyse@{DOMAIN}"]
    assert len(graph.calendar(f"ecole@{DOMAIN}")) == 1  # recorded: the next run will not create it again
    with db.unit_of_work() as session:
        directory.update_person(session=session, clock=clock, actor=ADMIN, person_id=person(session, "dreyes").id,
                                changes={"ms_upn": f"dreyes@{DOMAIN}"})
    fixed = run_now(db, clock, cid)
    assert fixed.status == "succeeded" and fixed.row_count == 1 and len(graph.events) == 2


def test_a_wrong_client_secret_is_a_failed_run_not_retried(
    db: Database, clock: FakeClock, graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_GRAPH_SECRET", "wrong")
    run = run_now(db, clock, _outlook(db, clock, graph))
    assert run.status == "failed" and "Invalid client secret" in (run.error or "") and run.attempts == 1


@pytest.fixture
def partner(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePartner]:
    monkeypatch.setenv("TEST_PARTNER_SECRET", FakePartner.PASSWORD)
    server = FakePartner({("MAIN", "CARD-ONCALL"), ("EAST", "CARDIOLOGY")})
    yield server
    server.close()


def test_partner_gets_the_on_call_person_at_every_mapped_site_and_follows_a_swap(
    db: Database, clock: FakeClock, partner: FakePartner
) -> None:
    with db.unit_of_work() as session:
        connector = make_connector(session, clock, target="ccc_partner", departments=["CARD"],
                                   transport=partner.transport(), options={"vendor": "vocera", "future_days": 0})
        teams = {"teams": [{"site": "MAIN", "team": "CARD-ONCALL"}, {"site": "EAST", "team": "CARDIOLOGY"}]}
        map_codes(session, clock, connector, {"CARD-CALL1-NIGHT": teams})
        cid = connector.id
    assert run_now(db, clock, cid).status == "succeeded"
    night = _night_slot(db)
    key = f"carerelay-{night.id}"
    assert partner.on_call[("MAIN", "CARD-ONCALL", key)]["name"] == "Dr. Daniel Reyes"
    assert partner.on_call[("EAST", "CARDIOLOGY", key)]["pager"] is not None
    assert partner.vendors == {"vocera"}

    partner.expire_tokens()  # the background user's session ran out: signed in again, once
    _give(db, clock, night.id, "tlindqvist")
    assert run_now(db, clock, cid).status == "succeeded"
    assert {v["name"] for v in partner.on_call.values()} == {"Dr. Tomas Lindqvist"}


def test_a_mistyped_team_id_fails_the_run_with_the_partners_reason(
    db: Database, clock: FakeClock, partner: FakePartner
) -> None:
    with db.unit_of_work() as session:
        connector = make_connector(session, clock, target="ccc_partner", departments=["CARD"],
                                   transport=partner.transport(), options={"vendor": "spok", "future_days": 0})
        map_codes(session, clock, connector, {"CARD-CALL1-NIGHT": {"teams": [{"site": "MAIN",
                                                                            "team": "CARD-ONCAL"}]}})
        cid = connector.id
    run = run_now(db, clock, cid)
    assert run.status == "failed" and "unknown team 'CARD-ONCAL' at site 'MAIN'" in (run.error or "")


def test_anesthesiago_receives_each_changed_date_whole(db: Database, clock: FakeClock,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_AGO_KEY", FakeAnesthesiaGo.API_KEY)
    server = FakeAnesthesiaGo()
    try:
        with db.unit_of_work() as session:
            connector = make_connector(session, clock, target="anesthesiago", departments=["CARD"],
                                       transport=server.transport(), options={"future_days": 1})
            map_codes(session, clock, connector, {c: {"assignment_id": f"AGO-{c}"} for c in CARD})
            cid = connector.id
        assert run_now(db, clock, cid).status == "succeeded"
        assert set(server.days) == {"2026-11-24", "2026-11-25"}
        assert {e["assignment_id"] for e in server.days["2026-11-24"]} >= {"AGO-CARD-CALL1-NIGHT"}
        night = _night_slot(db)
        _give(db, clock, night.id, "tlindqvist")
        server.days.clear()
        server.throttle = [5]
        run = run_now(db, clock, cid)
        assert run.status == "retrying"
        clock.advance(seconds=5)
        jobs.fire_due(db=db, clock=clock)
        runner.send_due(db=db, clock=clock)
        assert get_run(db, run.id).status == "succeeded"
        assert set(server.days) == {"2026-11-24"}  # only the changed date
        assert len(server.days["2026-11-24"]) == 4
    finally:
        server.close()


def test_an_answer_that_cannot_be_read_is_recorded_and_retried_not_left_hanging(
    db: Database, clock: FakeClock, graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.exports_peers import Reply

    original = graph.handle

    def garbled(method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], raw: bytes) -> Reply:
        if method == "POST" and path.endswith("/events"):
            return Reply(201, b"<html>proxy error</html>")
        return original(method, path, query, headers, raw)

    monkeypatch.setattr(graph, "handle", garbled)
    run = run_now(db, clock, _outlook(db, clock, graph))
    assert run.status == "retrying" and "JSONDecodeError" in (run.error or "")


def test_a_run_of_a_connector_disabled_meanwhile_is_not_sent(db: Database, clock: FakeClock,
                                                            graph: FakeGraph) -> None:
    from carerelay.integrations.exports import service

    cid = _outlook(db, clock, graph)
    with db.unit_of_work() as session:
        run_id = runner.request_run(session=session, clock=clock, actor=ADMIN, connector_id=cid).id
        service.update_connector(session=session, clock=clock, actor=ADMIN, connector_id=cid,
                                 changes={"enabled": False})
    runner.send_due(db=db, clock=clock)
    run = get_run(db, run_id)
    assert run.status == "failed" and "disabled" in (run.error or "") and graph.events == {}
