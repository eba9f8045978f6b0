"""Alert routes: raise (operators, integrations), my alerts, trail, acknowledge, respond, read-back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from carerelay.alerts import service
from carerelay.alerts.schemas import AlertIn, AlertOut, AlertTrailOut, ReadbackIn, RespondIn
from carerelay.auth.deps import ClockDep, DbSession, allow, signed_in
from carerelay.core.actor import Actor
from carerelay.directory.models import Role

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

RAISERS = (Role.OPERATOR, Role.INTEGRATION_ADMIN, Role.SYSTEM_ADMIN)


@router.post("", response_model=AlertOut, status_code=status.HTTP_201_CREATED)
def raise_alert(body: AlertIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*RAISERS)) -> AlertOut:
    alert = service.raise_alert(session=session, clock=clock, actor=actor, source="api",
                                source_ref=actor.username, **body.model_dump())
    return AlertOut.model_validate(alert)


@router.get("", response_model=list[AlertOut])
def my_alerts(session: DbSession, open_only: Annotated[bool, Query()] = True,
              actor: Actor = signed_in()) -> list[AlertOut]:
    return [AlertOut.model_validate(a) for a in service.my_alerts(session=session, actor=actor, open_only=open_only)]


@router.get("/{alert_id}", response_model=AlertTrailOut)
def alert_trail(alert_id: int, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> AlertTrailOut:
    alert, events = service.trail(session=session, clock=clock, actor=actor, alert_id=alert_id)
    return AlertTrailOut.model_validate({"alert": alert, "events": events})


@router.post("/{alert_id}/acknowledge", response_model=AlertOut)
def acknowledge(alert_id: int, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> AlertOut:
    return AlertOut.model_validate(service.acknowledge(session=session, clock=clock, actor=actor, alert_id=alert_id))


@router.post("/{alert_id}/respond", response_model=AlertOut)
def respond(alert_id: int, body: RespondIn, session: DbSession, clock: ClockDep,
            actor: Actor = signed_in()) -> AlertOut:
    return AlertOut.model_validate(service.respond(session=session, clock=clock, actor=actor, alert_id=alert_id,
                                                   choice=body.choice))


@router.post("/{alert_id}/readback", response_model=AlertOut)
def readback(alert_id: int, body: ReadbackIn, session: DbSession, clock: ClockDep,
             actor: Actor = signed_in()) -> AlertOut:
    return AlertOut.model_validate(service.record_readback(session=session, clock=clock, actor=actor,
                                                           alert_id=alert_id, text=body.text))
