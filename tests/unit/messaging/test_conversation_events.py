"""A conversation's events stay small however many people it has: each member gets a copy, so a copy
holding every member and the whole resolution made a conversation of N people cost N² in events."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from carerelay.core.actor import Actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.directory.models import Person
from carerelay.messaging import service as messaging
from carerelay.messaging.models import ConversationKind
from carerelay.realtime import service as realtime
from carerelay.realtime.models import Event
from tests.crowd import crowd

CROWD = 300


def _house(db: Database) -> Actor:
    with db.unit_of_work() as session:
        house = session.execute(select(Person).where(Person.username == "ghouse")).scalar_one()
        return Actor(person_id=house.id, username=house.username)


def _id(actor: Actor) -> int:
    assert actor.person_id is not None
    return actor.person_id


def _events(db: Database, kind: str, conversation_id: int) -> list[tuple[int, dict[str, Any]]]:
    with db.unit_of_work() as session:
        rows = session.execute(select(Event.person_id, Event.payload).where(Event.kind == kind)).all()
    return [(p, d) for p, d in rows if d["id"] == conversation_id]


def test_a_large_conversation_is_announced_partial_and_read_whole(db: Database, clock: FakeClock) -> None:
    ids = crowd(db, clock, CROWD, group="CROWD")
    house = _house(db)
    with db.unit_of_work() as session:
        conversation = messaging.create_conversation(session=session, clock=clock, actor=house,
                                                     kind=ConversationKind.ADDRESS, address="group:CROWD")
        whole = messaging.conversation_json(session, conversation)
    announced = _events(db, "conversation.new", conversation.id)
    assert sorted(p for p, _ in announced) == sorted([*ids, _id(house)])
    payload = announced[0][1]
    assert payload["partial"] is True and payload["member_count"] == CROWD + 1
    assert payload["member_ids"] is None and payload["resolution"] is None
    assert len(json.dumps(payload)) < 1000  # the same small copy for everyone, not the whole list each
    assert len(whole["member_ids"]) == CROWD + 1 and len(whole["resolution"]["recipients"]) == CROWD

    with db.unit_of_work() as session:
        newcomer = session.execute(select(Person.id).where(Person.username == "jwilson")).scalar_one()
        messaging.add_member(session=session, clock=clock, actor=house, conversation_id=conversation.id,
                             person_id=newcomer)
    changed = _events(db, "conversation.changed", conversation.id)
    assert len(changed) == CROWD + 2
    assert all(d["partial"] and d["member_count"] == CROWD + 2 and d["member_ids"] is None for _, d in changed)


def test_a_small_conversation_is_announced_whole(db: Database, clock: FakeClock) -> None:
    others = crowd(db, clock, realtime.PEOPLE_LISTED_MAX - 1)  # with the sender: exactly the most
    house = _house(db)
    with db.unit_of_work() as session:
        conversation = messaging.create_conversation(session=session, clock=clock, actor=house,
                                                     kind=ConversationKind.GROUP, member_ids=others, title="Ward")
    announced = _events(db, "conversation.new", conversation.id)
    assert len(announced) == realtime.PEOPLE_LISTED_MAX
    payload = announced[0][1]
    assert payload["partial"] is False and payload["member_count"] == realtime.PEOPLE_LISTED_MAX
    assert sorted(payload["member_ids"]) == sorted([*others, _id(house)])
