"""The demo hospital's connectors: there, disabled, and ready for a dry run."""

from __future__ import annotations

import csv
import io

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.exports import runner, service
from tests.exports_helpers import ADMIN


def test_demo_connectors_are_disabled_and_dry_run(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        connectors = {c.name: c for c in service.list_connectors(session=session)}
        demo = [c for c in connectors.values() if c.notify == ["interfaces@demo-health.example"]]
        assert {c.target for c in demo} >= {"epic_on_call_finder", "schedule_backup", "kronos_wfd", "outlook"}
        assert not any(c.enabled for c in demo)
        epic = connectors["Epic On Call Finder (demo folder)"]
        run = runner.dry_run(session=session, clock=clock, actor=ADMIN, connector_id=epic.id)
    assert run.status == "dry_run" and run.payload is not None
    rows = list(csv.DictReader(io.StringIO(run.payload.decode())))
    assert {r["Team ID"] for r in rows} == {"CARD-ONCALL", "NEURO-ONCALL"}
    assert runner.queue_due(db=db, clock=clock) == 0  # disabled: nothing runs by itself
