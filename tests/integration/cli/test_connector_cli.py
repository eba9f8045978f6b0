"""`carerelay connector …`: create from JSON, map, dry-run, run, history, download; refusals exit 1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carerelay.cli import app
from carerelay.config import get_settings
from carerelay.core.actor import cli_actor
from carerelay.core.clock import SystemClock
from carerelay.core.db import Database, make_engine
from carerelay.core.migrate import upgrade
from carerelay.demo import load_demo

cli = CliRunner()


@pytest.fixture
def demo_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """The demo hospital around today (the CLI runs on the system clock)."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    db = Database(make_engine(url))
    upgrade(db.engine)
    with db.unit_of_work() as session:
        load_demo(session=session, clock=SystemClock(), actor=cli_actor("test-setup"))
    monkeypatch.setenv("CARERELAY_DATABASE_URL", url)
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()
    db.engine.dispose()


def test_connector_commands(demo_db: Database, tmp_path: Path) -> None:
    config = tmp_path / "epic.json"
    config.write_text(json.dumps({
        "name": "epic-ocf", "target": "epic_on_call_finder", "departments": ["CARD"],
        "transport": {"kind": "folder", "path": str(tmp_path / "out")}, "file_name": "oncall_{run}.csv",
        "options": {"past_days": 0, "future_days": 0}}))
    created = cli.invoke(app, ["connector", "create", str(config), "--actor", "iadmin"])
    assert created.exit_code == 0, created.output
    assert "epic-ocf (epic_on_call_finder) created" in created.output  # after the demo's four
    mapped = cli.invoke(app, ["connector", "map", "epic-ocf", "CARD-CALL1-NIGHT", '{"team_id": "CARD-NIGHT"}'])
    assert mapped.exit_code == 0, mapped.output

    dry = cli.invoke(app, ["connector", "run", "epic-ocf", "--dry-run"])
    assert dry.exit_code == 0 and "dry_run" in dry.output and "not sent: CARD-CALL2-DAY" in dry.output
    assert not (tmp_path / "out").exists()
    real = cli.invoke(app, ["connector", "run", "epic-ocf"])
    assert real.exit_code == 0, real.output
    run_id = real.output.split()[1].rstrip(":")
    assert "succeeded" in real.output and (tmp_path / "out" / f"oncall_{run_id}.csv").exists()

    listed = cli.invoke(app, ["connector", "list"])
    assert "epic-ocf" in listed.output and "interval" in listed.output
    history = cli.invoke(app, ["connector", "history", "epic-ocf"])
    assert history.exit_code == 0 and "succeeded" in history.output and "dry" in history.output
    shown = cli.invoke(app, ["connector", "show", "epic-ocf"])
    assert '"target": "epic_on_call_finder"' in shown.output

    saved = tmp_path / "sent.csv"
    downloaded = cli.invoke(app, ["connector", "download", run_id, "-o", str(saved)])
    assert downloaded.exit_code == 0
    assert saved.read_bytes() == (tmp_path / "out" / f"oncall_{run_id}.csv").read_bytes()
    assert saved.read_text().startswith("Team ID,Team Name")

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "target": "kronos_wfc", "transport": {"kind": "folder", "path": "x"},
                               "person_key": "kronos"}))
    refused = cli.invoke(app, ["connector", "create", str(bad)])
    assert refused.exit_code == 1 and "person_key:" in refused.output
    missing = cli.invoke(app, ["connector", "run", "nope"])
    assert missing.exit_code == 1 and "no connector 'nope'" in missing.output
