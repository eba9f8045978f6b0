"""`carerelay scim token create|list|revoke` as an IT admin runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database, make_engine
from carerelay.core.errors import Unauthenticated
from carerelay.core.migrate import upgrade
from carerelay.integrations.scim import service as scim


def test_create_list_revoke(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    upgrade(engine)
    env = {**os.environ, "CARERELAY_DATABASE_URL": url, "CARERELAY_ENV_FILE": str(tmp_path / "none.env")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "carerelay", "scim", "token", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    created = run("create", "entra-id")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("scim_") and "shown once" in created.stderr
    listed = run("list")
    assert "entra-id" in listed.stdout and "active" in listed.stdout and token not in listed.stdout
    db = Database(engine)
    with db.unit_of_work() as session:
        assert scim.authenticate_token(session=session, clock=FakeClock(), token=token).provider == "entra-id"
        token_id = scim.list_tokens(session=session)[0].id
    assert run("revoke", str(token_id)).returncode == 0
    assert "revoked" in run("list").stdout
    with db.unit_of_work() as session, pytest.raises(Unauthenticated):
        scim.authenticate_token(session=session, clock=FakeClock(), token=token)
    missing = run("revoke", "999")
    assert missing.returncode == 1 and "no SCIM token 999" in missing.stderr
    engine.dispose()
