"""`carerelay staffing …`: import a local file, pull an SFTP feed, assign and look from a terminal."""

from __future__ import annotations

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
from carerelay.staffing import feeds
from tests.integration.staffing.sftp_server import sftp_server

runner = CliRunner()


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """The demo hospital as of the real clock: the CLI runs on the system clock like an admin's shell."""
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


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["staffing", *args])
    return result.exit_code, result.output


def _feed(db: Database, **config: object) -> int:
    with db.unit_of_work() as session:
        return feeds.create_feed(session=session, clock=SystemClock(), actor=cli_actor("test"), name="office files",
                                 kind="sftp_csv", id_field="username",
                                 config={"host": "127.0.0.1", "username": "carerelay", "remote_dir": "/outbox",
                                         "known_host_key": "ssh-ed25519 AAAA", "client_key_file": "/dev/null",
                                         **config}).id


def test_import_assign_and_look(cli_db: Database, tmp_path: Path) -> None:
    feed_id = _feed(cli_db)
    bad = tmp_path / "bad.csv"
    bad.write_text("who,where\nkasante,4W\n")
    code, output = _run("import", str(bad), "--feed", str(feed_id))
    assert code == 1 and "missing column 'person'" in output and "nothing applied" in output
    good = tmp_path / "good.csv"
    good.write_text("person,unit,room,bed,role\nkasante,4W,401,A,RN\nkasante,4W,401,B,RN\n")
    code, output = _run("import", str(good), "--feed", str(feed_id), "--actor", "ivan")
    assert code == 0 and "ok: 2 applied, 0 unchanged" in output, output
    code, output = _run("who", "4W")
    assert code == 0 and "4W-401-B" in output and "Kwame Asante" in output and "charge nurse:" in output
    code, output = _run("assign", "4W", "tech", "lgrant", "--actor", "dana")
    assert code == 0 and "created: 4W tech Lila Grant" in output, output
    code, output = _run("assign", "4W", "nurse", "lgrant", "--room", "499", "--bed", "A")
    assert code == 1 and "room: no room '499' on unit 4W" in output
    code, output = _run("conflicts", "--unit", "4W")
    assert code == 0 and "no open conflicts" in output


def test_pull_an_sftp_feed(cli_db: Database, tmp_path: Path) -> None:
    with sftp_server(tmp_path) as server:
        feed_id = _feed(cli_db, port=server.port, known_host_key=server.host_key,
                        client_key_file=str(server.client_key_file))
        (server.root / "outbox" / "night.csv").write_text("person,unit,role\nlgrant,ICU,tech\n")
        code, output = _run("pull", "--feed", str(feed_id))
        assert code == 0 and "night.csv" in output and "ok: 1 applied" in output, output
        code, output = _run("pull", "--feed", str(feed_id))
        assert code == 0 and "night.csv already imported" in output
