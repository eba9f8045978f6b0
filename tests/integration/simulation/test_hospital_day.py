"""`carerelay simulate`, shortened: a 30-bed evening hour through the 19:00 hand-over, fast, on SQLite and on
PostgreSQL, each in a database of its own. Every flow carries work, the escalation engine has to step
in (a third of the people never answer), and every safety target is met; the JSON and the chart are
written. A database that already holds people is refused and left alone."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from carerelay.cli import app
from carerelay.core.db import Database
from carerelay.directory.models import Person
from carerelay.simulation.workload import FLOWS
from tests.conftest import Backend
from tests.integration.conftest import FreshDatabase

runner = CliRunner()


def test_a_short_day_keeps_every_safety_promise(fresh_database: FreshDatabase, tmp_path: Path) -> None:
    out = tmp_path / "day.json"
    result = runner.invoke(app, ["simulate", "--hours", "1", "--beds", "30", "--fast", "--seed", "3",
                                 "--start", "2026-10-31T18:30", "--no-answer-share", "0.35",
                                 "--database-url", fresh_database.url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "safety targets met" in result.output
    data = json.loads(out.read_text())
    safety = data["safety"]
    assert safety["met"] and safety["handled_share"] == 1.0 and safety["critical_alerts"] > 0
    assert safety["reached_nobody"] == [] and safety["lost_messages"] == [] and safety["errors"] == []
    assert safety["critical_escalated"] > 0  # someone never answered and the chain went on
    for flow in FLOWS:
        assert data["flows"][flow]["count"] > 0, flow
        assert data["flows"][flow]["p99_ms"] >= data["flows"][flow]["p50_ms"] > 0
    assert [h["local"] for h in data["handovers"]] == ["2026-10-31 19:00 CDT"] * 2  # 4 West and the ICU
    assert sum(h["unassigned_beds"] == [] for h in data["handovers"]) == 2
    assert ET.fromstring(out.with_suffix(".svg").read_text()).tag == "{http://www.w3.org/2000/svg}svg"


def test_a_database_with_people_in_it_is_refused(backend: Backend, engine: Engine, tmp_path: Path) -> None:
    with Database(engine).read_only() as session:
        before = session.execute(select(func.count()).select_from(Person)).scalar_one()
    out = tmp_path / "never.json"
    result = runner.invoke(app, ["simulate", "--hours", "1", "--fast", "--database-url", backend.cli_url(),
                                 "--out", str(out)])
    assert result.exit_code == 2
    assert "already holds people" in result.output
    assert not out.exists()
    with Database(engine).read_only() as session:
        assert session.execute(select(func.count()).select_from(Person)).scalar_one() == before
