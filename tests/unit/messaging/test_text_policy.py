"""The send's text check reads the organization's policy as it stands, on both databases: an edit is
seen at once, by the same transaction and by later ones, and a database without the row gets the
pocket guide's defaults."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from carerelay.core.actor import cli_actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.core.errors import Invalid
from carerelay.messaging import service
from carerelay.messaging.models import OrgPolicy

ORDER = "give 2 mg morphine IV now"


def test_a_policy_edit_counts_in_the_same_transaction_and_after(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        service.update_policy(session=session, clock=clock, actor=cli_actor("test"),
                              changes={"orders_in_text": "block", "courtesy_replies_silent": False})
        with pytest.raises(Invalid, match="Not sent"):
            service.check_text(session=session, text=ORDER, confirm=())
        assert service.check_text(session=session, text="thanks", confirm=()) == ([], False)
    with db.unit_of_work() as session:
        with pytest.raises(Invalid, match="Not sent"):
            service.check_text(session=session, text=ORDER, confirm=())
        assert service.check_text(session=session, text="thanks", confirm=()) == ([], False)
        service.update_policy(session=session, clock=clock, actor=cli_actor("test"), changes={"orders_in_text": "off"})
    with db.unit_of_work() as session:
        assert service.check_text(session=session, text=ORDER, confirm=()) == ([], False)


def test_without_a_policy_row_the_defaults_apply_and_the_row_is_made(db: Database) -> None:
    with db.unit_of_work() as session:
        session.execute(delete(OrgPolicy))
    with db.unit_of_work() as session:
        with pytest.raises(service.ConfirmationRequired):
            service.check_text(session=session, text=ORDER, confirm=())
        assert service.check_text(session=session, text="thanks", confirm=()) == ([], True)
    with db.unit_of_work() as session:
        assert session.get(OrgPolicy, 1) is not None
