"""Many synthetic people at once, for what must stay linear in the size of a fan-out."""

from __future__ import annotations

from sqlalchemy import insert, select

from carerelay.core.actor import cli_actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.directory import service as directory
from carerelay.directory.models import Person


def crowd(db: Database, clock: FakeClock, n: int, *, group: str | None = None) -> list[int]:
    """``n`` active people (ids in creation order), and with ``group`` a group of them by that code."""
    with db.unit_of_work() as session:
        session.execute(insert(Person), [
            {"username": f"crowd{i}", "given_name": "Crowd", "family_name": f"Member{i}",
             "display_name": f"Crowd Member{i}", "profession": "nurse", "family_key": f"member{i}",
             "given_key": "crowd", "created_at": clock.now(), "updated_at": clock.now()} for i in range(n)])
        ids = list(session.execute(select(Person.id).where(Person.username.like("crowd%"))
                                   .order_by(Person.id)).scalars())
        if group is not None:
            directory.create_group(session=session, clock=clock, actor=cli_actor("test"), kind="group", code=group,
                                   name=f"Group {group}", member_ids=ids)
        return ids
