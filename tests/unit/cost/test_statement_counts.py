"""What the hot paths cost in statements, pinned: a send, an escalation step, a nurse-call submit, a
resolve (person, role, bed), HL7 storing and processing.

A change that adds a statement to these paths fails here and says which statements ran, so the cost
is a decision, not an accident (docs/subsystems/performance.md explains each count).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from carerelay.alerts import service as alerts
from carerelay.auth.service import signed_in_actor, start_session
from carerelay.config import Settings
from carerelay.core.actor import Actor, cli_actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.directory.models import Person
from carerelay.integrations.hl7.feeds import Feed
from carerelay.integrations.hl7.store import Inbound, process_pending, receive_messages
from carerelay.integrations.wctp.service import ServerConfig, handle_request
from carerelay.jobs import service as jobs
from carerelay.messaging import service as messaging
from carerelay.messaging.models import ConversationKind
from carerelay.patients.service import ResultPolicy
from carerelay.routing.resolver import resolve
from tests.hl7support import uniq
from tests.querycount import statements
from tests.wctpsupport import submit as wctp_submit


def _person(db: Database, username: str) -> Person:
    with db.unit_of_work() as session:
        return session.execute(select(Person).where(Person.username == username)).scalar_one()


def test_a_send_costs_eleven_statements_eight_on_postgresql(db: Database, clock: FakeClock, settings: Settings) -> None:
    """Sign-in check (1: the session with its person and roles), policy, conversation (one UPDATE locks
    it, checks membership and takes the seq), members, message, receipts, event cursors (one upsert for
    everyone), events, and at commit the audit chain (head, entry, new head). PostgreSQL needs eight: the
    message with its receipts, the cursors with the events and the NOTIFY that wakes other nodes, and the
    entry with the new head are one statement each there. The sender's name comes with the sign-in
    check: no query for it."""
    house, wilson = _person(db, "ghouse"), _person(db, "jwilson")
    with db.unit_of_work() as session:
        token = start_session(session=session, clock=clock, settings=settings, person=house, kind="api", ip=None,
                              user_agent=None, method="test").token
        conversation = messaging.create_conversation(
            session=session, clock=clock, actor=Actor(person_id=house.id, username=house.username),
            kind=ConversationKind.DIRECT, member_ids=[wilson.id])

    def send(text: str) -> None:  # as a request does: the sender's name comes with the sign-in check
        with db.unit_of_work() as session:
            actor = signed_in_actor(session=session, clock=clock, settings=settings, token=token, ip=None)
            messaging.send_message(session=session, clock=clock, actor=actor,
                                   request=messaging.SendRequest(conversation_id=conversation.id, text=text))

    send("warm-up: the first send creates the event cursors")
    with statements(db.engine) as seen:
        send("Pt in 12 asking for you")
    expected = 8 if db.dialect == "postgresql" else 11
    assert len(seen) == expected, "\n".join(seen)


def test_an_escalation_step_costs_nineteen_statements(db: Database, clock: FakeClock) -> None:
    """The default chain's second step, to a group of three: claim the timer, lock the run, the alert,
    the run's step, resolve (the group with its members, the people with their contact points), the
    step's own trail entry, the recipients' departments and routing rules (one join for all three),
    earlier recipients, recipients, their trail entries (one statement: alerts/trail.py), event cursors
    (one upsert), events, run, trail, audit at commit (head, entry, new head), fired. On PostgreSQL the
    cursors, events and NOTIFY are one statement, and so are the entry and the new head."""
    house = _person(db, "ghouse")
    with db.unit_of_work() as session:
        alerts.raise_alert(session=session, clock=clock, actor=cli_actor("test"), kind="manual",
                           priority="urgent", title="K+ 6.8", body="", source="test", address=f"person:{house.id}")
    clock.advance(minutes=30)
    with statements(db.engine) as seen:
        assert jobs.fire_one(db=db, clock=clock)
    expected = 17 if db.dialect == "postgresql" else 19
    assert len(seen) == expected, f"{len(seen)} statements:\n" + "\n".join(seen)


def test_a_nurse_call_submit_costs_twenty_two_statements(db: Database, clock: FakeClock) -> None:
    """A WCTP SubmitRequest to a bed (bench/wctp.py's): the sender, the duplicate check, the
    recipient mapping, the message, the paging rules, the patient in the bed; then, in a savepoint
    (not counted, nor SQLite's BEGIN: the harness leaves its own out), the alert, its first trail
    entries (raised and escalation started, one statement), the bed (unit, site, bed), its nurse's
    assignment with the person, the people with their contact points, their departments and
    routing rules, the recipient, the trail entry, event cursors, events, the run (written once its
    first step has set it) and its timer; then the message's routing and at commit the audit chain.
    PostgreSQL adds the duplicate check's advisory lock, and has the cursors, events and NOTIFY in one
    statement, and the audit entry and the new head in another."""
    config = ServerConfig()
    with db.unit_of_work() as session:  # the first submit of a kind warms what is prepared once
        handle_request(session=session, clock=clock, raw=wctp_submit(), peer=None, config=config)
    with statements(db.engine) as seen, db.unit_of_work() as session:
        answer = handle_request(session=session, clock=clock, raw=wctp_submit(), peer=None, config=config)
    assert answer.code == 200, answer.body
    expected = 21 if db.dialect == "postgresql" else 22
    assert len(seen) == expected, f"{len(seen)} statements:\n" + "\n".join(seen)


def test_resolving_a_person_costs_one_statement(db: Database, clock: FakeClock) -> None:
    """The person's name and active flag with their active contact points, in one join."""
    house = _person(db, "ghouse")
    with db.read_only() as session, statements(db.engine) as seen:
        assert resolve(session, f"person:{house.id}", clock.now()).person_ids == [house.id]
    assert len(seen) == 1, "\n".join(seen)


@pytest.mark.parametrize("address", ["role:CARD-CALL1-DAY", "role:CARD", "role:Cardiology On Call#all"])
def test_resolving_a_role_costs_two_round_trips(db: Database, clock: FakeClock, address: str) -> None:
    """With the on-call bucket cached (after the first lookup), by assignment code, department code
    or assignment name: the lookup's one round trip (its schedule token, the department codes and
    zones, names, and which department the code names) and the people with their contact points."""
    with db.read_only() as session:
        first = resolve(session, address, clock.now())
        with statements(db.engine) as seen:
            again = resolve(session, address, clock.now())
    assert not first.empty and again == first
    assert len(seen) == 2, "\n".join(seen)


def test_resolving_a_bed_costs_three_statements(db: Database, clock: FakeClock) -> None:
    """What a nurse-call alert's address costs: the unit with its site's time zone and the bed in one
    join, the bed's assignments with whether their people are active, and the people with their
    contact points."""
    with db.read_only() as session, statements(db.engine) as seen:
        found = resolve(session, "location:4W/412/B/nurse", clock.now())
    assert not found.empty
    assert len(seen) == 3, "\n".join(seen)


def _results(mrns: list[str]) -> list[bytes]:
    return ["\r".join([
        f"MSH|^~\\&|LAB|MAINHOSP|CARERELAY|MAINHOSP|20261124093000||ORU^R01|{uniq('C')}|P|2.5.1",
        f"PID|1||{mrn}^^^MAINHOSP^MR||DOE^JANE||19580214|F",
        "OBR|1|ORD1|FIL1|80048^BASIC METABOLIC PANEL^CPT||||||||||||1234567890^HOUSE^GREGORY^^^DR^^^NPI",
        "OBX|1|NM|2951-2^Sodium^LN||139|mmol/L|136-145|N|||F|||20261124092500",
        "OBX|2|NM|2823-3^Potassium^LN||4.1|mmol/L|3.5-5.1|N|||F|||20261124092500"]).encode() for mrn in mrns]


def test_storing_four_frames_costs_two_statements_and_processing_eight_results_thirty_eight(
        db: Database, clock: FakeClock) -> None:
    """Store: the duplicate check and one multi-row insert. Process: the batch's rows, then per message
    the patient (read, touched), its encounter and the observations (one executemany), one provider
    lookup for the batch, the outcomes in one update, and one audit chain append at commit (head, entries,
    new head; on PostgreSQL the entries and the new head are one statement)."""
    feed = Feed(name="default", port=0)
    mrns = [uniq("M") for _ in range(8)]

    def store(frames: list[bytes]) -> None:
        with db.unit_of_work() as session:
            receive_messages(session=session, clock=clock, items=[Inbound(feed, f, "10.0.0.1:1") for f in frames])

    def process() -> None:
        with db.unit_of_work() as session:
            process_pending(session=session, clock=clock, feeds={"default": feed}, policy=ResultPolicy(),
                            stat_priorities=("S",), limit=8)

    store(_results(mrns))
    process()  # the patients exist from here on
    with statements(db.engine) as stored:
        store(_results(mrns[:4]))
    store(_results(mrns[4:]))
    clock.advance(seconds=1)  # each patient's updated_at moves, as it does in real life
    with statements(db.engine) as processed:
        process()
    assert len(stored) == 2, "\n".join(stored)
    expected = 37 if db.dialect == "postgresql" else 38
    assert len(processed) == expected, f"{len(processed)} statements:\n" + "\n".join(processed)
