"""make_* helpers for connector tests, over the demo hospital's published November."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from carerelay.core.actor import cli_actor
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.integrations.exports import runner, service
from carerelay.integrations.exports.models import Connector, ExportRun
from carerelay.scheduling import service as scheduling

ADMIN = cli_actor("test-admin")
GOLDEN = Path(__file__).resolve().parent / "golden" / "exports"

CARD = ("CARD-CALL1-DAY", "CARD-CALL2-DAY", "CARD-CALL1-NIGHT", "CARD-CALL2-NIGHT")


def make_connector(session: Session, clock: Clock, **values: Any) -> Connector:
    values.setdefault("name", f"{values['target']}-test")
    return service.create_connector(session=session, clock=clock, actor=ADMIN, values=values)


def map_codes(session: Session, clock: Clock, connector: Connector, fields: dict[str, dict[str, Any]]) -> None:
    for code, mapping in fields.items():
        assignment = scheduling.find_assignment(session=session, code=code)
        assert assignment is not None, code
        service.map_assignment(session=session, clock=clock, actor=ADMIN, connector_id=connector.id,
                               assignment_id=assignment.id, fields=mapping)


def run_now(db: Database, clock: Clock, connector_id: int) -> ExportRun:
    """Queue a manual run and attempt it, as the worker would."""
    with db.unit_of_work() as session:
        run_id = runner.request_run(session=session, clock=clock, actor=ADMIN, connector_id=connector_id).id
    runner.attempt(db=db, clock=clock, run_id=run_id)
    return get_run(db, run_id)


def get_run(db: Database, run_id: int) -> ExportRun:
    with db.unit_of_work() as session:
        run = service.get_run(session=session, run_id=run_id)
        session.expunge(run)
        return run


def check_golden(name: str, data: bytes) -> None:
    """Compare with tests/golden/exports/NAME; CARERELAY_UPDATE_GOLDEN=1 rewrites it (review the diff)."""
    path = GOLDEN / name
    if os.environ.get("CARERELAY_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    assert path.exists(), f"no golden file {path}: run with CARERELAY_UPDATE_GOLDEN=1 and review it"
    assert data.decode() == path.read_bytes().decode(), f"{name} differs from its golden file"


def folder(tmp: Path, name: str = "out") -> dict[str, Any]:
    return {"kind": "folder", "path": str(tmp / name)}
