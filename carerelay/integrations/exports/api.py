"""Connector routes under /api/exports, for integration and system administrators.

"Run now" queues the run and answers 202: the transfer happens in the worker, never inside this
request's transaction. A dry run builds the payload here (no network) and answers with the run,
whose payload is then downloadable like any other.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from carerelay.auth.deps import ClockDep, DbSession, allow
from carerelay.core.actor import Actor
from carerelay.directory.models import Role
from carerelay.integrations.exports import runner, service
from carerelay.integrations.exports.schemas import (
    ConnectorIn,
    ConnectorOut,
    ConnectorPatch,
    MappingIn,
    RunIn,
    RunOut,
    TargetOut,
)

router = APIRouter(prefix="/api/exports", tags=["exports"])

ADMINS = (Role.INTEGRATION_ADMIN, Role.SYSTEM_ADMIN)


@router.get("/targets", response_model=list[TargetOut])
def list_targets(actor: Actor = allow(*ADMINS)) -> list[TargetOut]:
    return [TargetOut(name=t.name, label=t.label, direction=t.direction, default_person_key=t.default_person_key,
                      person_keys=list(t.person_keys) if t.person_keys else None, default_trigger=t.default_trigger,
                      default_content=t.default_content, options_schema=t.options_model.model_json_schema(),
                      mapping_schema=t.mapping_model.model_json_schema() if t.mapping_model else None)
            for t in service.target_catalog()]


@router.get("/connectors", response_model=list[ConnectorOut])
def list_connectors(session: DbSession, actor: Actor = allow(*ADMINS)) -> list[ConnectorOut]:
    return [ConnectorOut.model_validate(c) for c in service.list_connectors(session=session)]


@router.post("/connectors", response_model=ConnectorOut, status_code=status.HTTP_201_CREATED)
def create_connector(body: ConnectorIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)
                     ) -> ConnectorOut:
    connector = service.create_connector(session=session, clock=clock, actor=actor,
                                         values=body.model_dump(exclude_none=True))
    return ConnectorOut.model_validate(connector)


@router.get("/connectors/{connector_id}", response_model=ConnectorOut)
def get_connector(connector_id: int, session: DbSession, actor: Actor = allow(*ADMINS)) -> ConnectorOut:
    return ConnectorOut.model_validate(service.get_connector(session=session, connector_id=connector_id))


@router.patch("/connectors/{connector_id}", response_model=ConnectorOut)
def update_connector(connector_id: int, body: ConnectorPatch, session: DbSession, clock: ClockDep,
                     actor: Actor = allow(*ADMINS)) -> ConnectorOut:
    connector = service.update_connector(session=session, clock=clock, actor=actor, connector_id=connector_id,
                                         changes=body.model_dump(exclude_unset=True))
    return ConnectorOut.model_validate(connector)


@router.put("/connectors/{connector_id}/assignments/{assignment_id}", status_code=status.HTTP_204_NO_CONTENT)
def map_assignment(connector_id: int, assignment_id: int, body: MappingIn, session: DbSession, clock: ClockDep,
                   actor: Actor = allow(*ADMINS)) -> Response:
    service.map_assignment(session=session, clock=clock, actor=actor, connector_id=connector_id,
                           assignment_id=assignment_id, fields=body.fields)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/connectors/{connector_id}/run", response_model=RunOut, status_code=status.HTTP_202_ACCEPTED,
             responses={200: {"model": RunOut, "description": "A dry run, built now"}})
def run_connector(connector_id: int, body: RunIn, response: Response, session: DbSession, clock: ClockDep,
                  actor: Actor = allow(*ADMINS)) -> RunOut:
    if body.dry_run:
        connector = service.get_connector(session=session, connector_id=connector_id)
        if service.parse(connector).target.direction == "inbound":
            return RunOut.model_validate(runner.queue_dry_import(session=session, clock=clock, actor=actor,
                                                                 connector_id=connector_id))
        response.status_code = status.HTTP_200_OK
        return RunOut.model_validate(runner.dry_run(session=session, clock=clock, actor=actor,
                                                    connector_id=connector_id))
    return RunOut.model_validate(runner.request_run(session=session, clock=clock, actor=actor,
                                                    connector_id=connector_id))


@router.get("/connectors/{connector_id}/runs", response_model=list[RunOut])
def list_runs(connector_id: int, session: DbSession, limit: Annotated[int, Query(ge=1, le=500)] = 50,
              actor: Actor = allow(*ADMINS)) -> list[RunOut]:
    return [RunOut.model_validate(r) for r in service.list_runs(session=session, connector_id=connector_id,
                                                                limit=limit)]


@router.get("/runs/{run_id}", response_model=RunOut)
def get_run(run_id: int, session: DbSession, actor: Actor = allow(*ADMINS)) -> RunOut:
    return RunOut.model_validate(service.get_run(session=session, run_id=run_id))


@router.get("/runs/{run_id}/payload", response_class=Response,
            responses={200: {"content": {"text/csv": {}, "application/json": {}}, "description": "What was sent"}})
def download_payload(run_id: int, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)) -> Response:
    run = service.access_payload(session=session, clock=clock, actor=actor, run_id=run_id)
    name = run.file_name or f"run-{run.id}.json"
    assert run.payload is not None
    return Response(run.payload, media_type=run.content_type or "application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})
