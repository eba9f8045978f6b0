"""careteam: addresses (and location: for non-nursing roles) resolve from the ADT census; a silent feed
alerts its admins. Care roles at a bed (nurse, tech…) come from staff assignments: tests/unit/staffing.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from carerelay.alerts.intake import INTEGRATION_ADMINS, _feed_silent
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.core.errors import Invalid
from carerelay.integrations.hl7.store import FeedHealth
from carerelay.routing.resolver import resolve
from tests.api.messaging.helpers import user
from tests.scenarios.test_critical_potassium import _apply


def test_care_team_and_bed_addresses(client: TestClient, db: Database, clock: FakeClock) -> None:
    _apply(db, clock, "adt_a01_admit.hl7", "MRN-CT1")
    house, nurse = user(client, "ghouse"), user(client, "cnurse")
    with db.unit_of_work() as session:
        attending = resolve(session, "careteam:MRN-CT1/attending", clock.now())
        assert attending.person_ids == [house.id]
        assert "attending of DOE, JANE (MRN MRN-CT1)" in attending.recipients[0].reason
        bedside = resolve(session, "location:4W/412/B/nurse", clock.now())
        assert bedside.person_ids == [nurse.id] and "4W-412-B primary nurse" in bedside.recipients[0].reason
        empty_bed = resolve(session, "location:4W/401/A/attending", clock.now())
        assert empty_bed.empty and "no patient in 4W-401-A" in empty_bed.explain()
        nobody = resolve(session, "careteam:MRN-CT1/chaplain", clock.now())
        assert nobody.empty and "no chaplain" in nobody.explain()
        for bad in ("careteam:nobody-at-all/attending", "location:4W/412/nurse", "careteam:MRN-CT1"):
            with pytest.raises(Invalid):
                resolve(session, bad, clock.now())
    alert = client.post("/api/alerts", headers=user(client, "ooperator").headers,
                        json={"title": "Bed 412-B call light", "address": "location:4W/412/B/nurse"})
    assert alert.status_code == 201
    assert [a["id"] for a in client.get("/api/alerts", headers=nurse.headers).json()] == [alert.json()["id"]]


def test_silent_feed_alerts_the_integration_admins(client: TestClient, db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        admins = resolve(session, INTEGRATION_ADMINS, clock.now()).person_ids
        _feed_silent(session, clock, FeedHealth(feed="adt", silence_minutes=10,
                                                last_message_at=clock.now() - timedelta(minutes=12),
                                                silent_since=clock.now() - timedelta(minutes=2),
                                                newly_silent=True))
    iadmin = user(client, "iadmin")
    assert iadmin.id in admins
    mine = client.get("/api/alerts", headers=iadmin.headers).json()
    assert any(a["kind"] == "feed_silent" and "adt" in a["title"] for a in mine)
