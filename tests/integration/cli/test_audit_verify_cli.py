"""`carerelay audit verify` as an operator runs it: passes on the demo, fails on a tampered copy."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, text

from tests.conftest import Backend

CLI = [sys.executable, "-m", "carerelay"]


def _verify(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARERELAY_DATABASE_URL": url}
    return subprocess.run([*CLI, "audit", "verify"], env=env, capture_output=True, text=True, timeout=120)


def test_verify_passes_on_the_demo(backend: Backend, engine: Engine) -> None:
    result = _verify(backend.cli_url())
    assert result.returncode == 0, result.stderr
    assert "audit chain intact" in result.stdout


def test_verify_fails_on_a_tampered_copy(backend: Backend, engine: Engine, tmp_path: Path) -> None:
    if backend.name == "sqlite":
        source = Path(backend.url.split(":///", 1)[1])
        copy = tmp_path / "tampered.db"
        with sqlite3.connect(source) as src, sqlite3.connect(copy) as dst:
            src.backup(dst)
        url = f"sqlite:///{copy}"
        tamper_engine = Backend("sqlite", url, None).engine()
        with tamper_engine.begin() as conn:
            conn.execute(text("DROP TRIGGER audit_entries_refuse_update"))
            conn.execute(text("UPDATE audit_entries SET actor_name = 'someone-else' WHERE seq = 5"))
        tamper_engine.dispose()
        result = _verify(url)
    else:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE audit_backup AS SELECT * FROM audit_entries WHERE seq = 5"))
            conn.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER USER"))
            conn.execute(text("UPDATE audit_entries SET actor_name = 'someone-else' WHERE seq = 5"))
        try:
            result = _verify(backend.cli_url())
        finally:
            with engine.begin() as conn:
                conn.execute(text("UPDATE audit_entries SET actor_name = b.actor_name FROM audit_backup b "
                                  "WHERE audit_entries.seq = 5"))
                conn.execute(text("ALTER TABLE audit_entries ENABLE TRIGGER USER"))
                conn.execute(text("DROP TABLE audit_backup"))
    assert result.returncode == 1
    assert "entry 5 was altered" in result.stderr
