"""Appending to a conversation goes past the ORM (one UPDATE locks the row, checks membership and
reserves the sequence numbers), so these check that nothing the ORM holds or does can disagree with it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from carerelay.core.actor import Actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.core.errors import Conflict, NotFound
from carerelay.directory.models import Person
from carerelay.messaging import service
from carerelay.messaging.models import Conversation, ConversationKind, Message
from carerelay.patients.models import Patient


def _actor(db: Database, username: str) -> Actor:
    with db.unit_of_work() as session:
        person = session.execute(select(Person).where(Person.username == username)).scalar_one()
        return Actor(person_id=person.id, username=person.username, display_name=person.display_name)


def _conversation(db: Database, clock: FakeClock, a: Actor, b: Actor) -> int:
    with db.unit_of_work() as session:
        assert b.person_id is not None
        return service.create_conversation(session=session, clock=clock, actor=a, kind=ConversationKind.GROUP,
                                           member_ids=[b.person_id], title="appending").id


def _send(db: Database, clock: FakeClock, actor: Actor, conversation_id: int, text: str,
          patient_id: int | None = None) -> service.MessageView:
    with db.unit_of_work() as session:
        view, _ = service.send_message(session=session, clock=clock, actor=actor, request=service.SendRequest(
            conversation_id=conversation_id, text=text, patient_id=patient_id))
        return view


def test_a_conversation_row_the_session_holds_sees_the_send_and_its_own_edit_keeps_it(
        db: Database, clock: FakeClock) -> None:
    house, wilson = _actor(db, "ghouse"), _actor(db, "jwilson")
    conversation_id = _conversation(db, clock, house, wilson)
    _send(db, clock, house, conversation_id, "first")
    clock.advance(minutes=5)
    with db.unit_of_work() as session:
        held = session.get_one(Conversation, conversation_id)
        assert held.last_seq == 1
        view, _ = service.send_message(session=session, clock=clock, actor=wilson,
                                       request=service.SendRequest(conversation_id=conversation_id, text="second"))
        assert (view.seq, held.last_seq, held.last_message_at) == (2, 2, clock.now())
        held.title = "renamed in the same transaction"  # flushed with the commit: must not undo the seq
    with db.unit_of_work() as session:
        row = session.get_one(Conversation, conversation_id)
        assert (row.last_seq, row.title, row.last_message_at) == (2, "renamed in the same transaction", clock.now())
    assert _send(db, clock, house, conversation_id, "third").seq == 3


def test_a_forward_takes_consecutive_numbers_after_the_last(db: Database, clock: FakeClock) -> None:
    house, wilson = _actor(db, "ghouse"), _actor(db, "jwilson")
    source, target = _conversation(db, clock, house, wilson), _conversation(db, clock, house, wilson)
    originals = [_send(db, clock, house, source, f"note {n}").id for n in range(3)]
    _send(db, clock, wilson, target, "already here")
    with db.unit_of_work() as session:
        out = service.forward(session=session, clock=clock, actor=house, to_conversation_id=target,
                              message_ids=originals)
    assert [m.seq for m in out] == [2, 3, 4]
    with db.unit_of_work() as session:
        assert session.get_one(Conversation, target).last_seq == 4
        assert session.execute(select(Message.seq).where(Message.conversation_id == target)
                               .order_by(Message.seq)).scalars().all() == [1, 2, 3, 4]


def test_a_non_member_is_told_nothing_and_changes_nothing(db: Database, clock: FakeClock) -> None:
    house, wilson, other = _actor(db, "ghouse"), _actor(db, "jwilson"), _actor(db, "lcuddy")
    conversation_id = _conversation(db, clock, house, wilson)
    _send(db, clock, house, conversation_id, "members only")
    with pytest.raises(NotFound, match=f"no conversation {conversation_id}"):
        _send(db, clock, other, conversation_id, "let me in")
    with pytest.raises(NotFound):
        _send(db, clock, house, 987654321, "nowhere")
    with db.unit_of_work() as session:
        assert session.get_one(Conversation, conversation_id).last_seq == 1


def test_the_first_patient_named_sticks_and_another_is_refused(db: Database, clock: FakeClock) -> None:
    house, wilson = _actor(db, "ghouse"), _actor(db, "jwilson")
    conversation_id = _conversation(db, clock, house, wilson)
    with db.unit_of_work() as session:
        patients = [Patient(mrn=f"APPEND-{n}", family_name="Synthetic", created_at=clock.now(),
                            updated_at=clock.now()) for n in (1, 2)]
        session.add_all(patients)
        session.flush()
        first, second = (p.id for p in patients)
    with db.unit_of_work() as session:
        held = session.get_one(Conversation, conversation_id)
        service.send_message(session=session, clock=clock, actor=house, request=service.SendRequest(
            conversation_id=conversation_id, text="about this patient", patient_id=first))
        assert held.patient_id == first
    with pytest.raises(Conflict):
        _send(db, clock, wilson, conversation_id, "about another", patient_id=second)
    assert _send(db, clock, wilson, conversation_id, "no patient named").patient_id == first
    with db.unit_of_work() as session:
        row = session.get_one(Conversation, conversation_id)
        assert (row.patient_id, row.last_seq) == (first, 2)
