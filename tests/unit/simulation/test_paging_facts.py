"""The simulation's check of paging rules after a run: the addresses a rule can page, for a bed of each
unit, that name nothing. Placeholders a page fills ({address}, {recipient}, {sender}) are not checked,
as the auditor's own paging-rule check does not: a real page always has them."""

from __future__ import annotations

from datetime import timedelta

from carerelay.core.actor import cli_actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.paging import service as paging
from carerelay.simulation.clinicians import Devices
from carerelay.simulation.facts import Facts, _paging
from carerelay.simulation.hospital import BedRef, Hospital
from carerelay.simulation.runner import Options, Run
from carerelay.simulation.workload import Workload


def test_bed_templates_are_filled_and_page_placeholders_left_to_the_page(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        for name, target in (("to the page's own target", "{address}"), ("to the sender's desk", "pager:{sender}"),
                             ("to a unit group that does not exist", "group:NOSUCH-{unit}")):
            paging.create_rule(session=session, clock=clock, actor=cli_actor("test"), name=name,
                               alert_kind="nurse_call", target=target)
    hospital = Hospital(zone="America/Chicago", beds=(BedRef("4W", "412", "B", "MAIN", "ward"),), zones={},
                        teams={}, attendings={})
    run = Run(options=Options(start=clock.now() - timedelta(hours=1), hours=1), hospital=hospital,
              workload=Workload(), devices=Devices(), errors=[])
    facts = Facts()
    with db.read_only() as session:
        _paging(session, run, facts)
    assert len(facts.unresolvable) == 1, facts.unresolvable
    assert facts.unresolvable[0].startswith("paging rule 'to a unit group that does not exist' for 4W: group:NOSUCH-4W")
