"""Alert routes: raise (operators, integrations), my alerts, trail, acknowledge, respond, read-back;
and the alert reports (JSON and CSV) for compliance officers and administrators."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from carerelay.alerts import reports, service
from carerelay.alerts.schemas import (
    AlertIn,
    AlertOut,
    AlertReceiptsChanged,
    AlertReceiptsIn,
    AlertReportOut,
    AlertTrailOut,
    ReadbackIn,
    RespondIn,
)
from carerelay.auth.deps import ClockDep, DbSession, allow, signed_in
from carerelay.core.actor import Actor
from carerelay.directory.models import Role
from carerelay.messaging.models import Priority

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


@router.post("/receipts", response_model=AlertReceiptsChanged)
def mark_alerts(body: AlertReceiptsIn, session: DbSession, clock: ClockDep,
                actor: Actor = signed_in()) -> AlertReceiptsChanged:
    """The app reports an alert shown on the device (delivered) or opened (read); the WebSocket
    takes the same as an ``alert.receipt`` frame."""
    return AlertReceiptsChanged(changed=service.record_receipts(session=session, clock=clock, actor=actor,
                                                            alert_ids=body.alert_ids, state=body.state))


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


reports_router = APIRouter(prefix="/api/reports", tags=["reports"])

REPORT_READERS = (Role.COMPLIANCE_OFFICER, Role.SYSTEM_ADMIN, Role.INTEGRATION_ADMIN)


def _report(session: DbSession, clock: ClockDep, actor: Actor, group_by: str, since: datetime | None,
            until: datetime | None, kind: str | None, department_id: int | None,
            priority: Priority | None) -> reports.Report:
    return reports.alert_report(session=session, clock=clock, actor=actor, group_by=group_by, since=since,
                                until=until, kind=kind, department_id=department_id,
                                priority=priority.value if priority else None)


GroupBy = Annotated[Literal["kind", "department", "priority", "person", "unit", "test"], Query()]
Since = Annotated[datetime | None, Query(description="Alerts raised at or after (default: 30 days before until)")]
Until = Annotated[datetime | None, Query(description="Alerts raised before (default: now)")]
KindFilter = Annotated[str | None, Query(max_length=40)]


@reports_router.get("/alerts", response_model=AlertReportOut)
def alert_report(session: DbSession, clock: ClockDep, group_by: GroupBy = "kind", since: Since = None,
                 until: Until = None, kind: KindFilter = None, department_id: Annotated[int | None, Query()] = None,
                 priority: Annotated[Priority | None, Query()] = None,
                 actor: Actor = allow(*REPORT_READERS)) -> AlertReportOut:
    """Time to deliver, read and acknowledge, and escalation counts; ``kind=critical_result&group_by=unit``
    (or ``test``) is the time from lab result to acknowledgement per unit (per test code)."""
    report = _report(session, clock, actor, group_by, since, until, kind, department_id, priority)
    return AlertReportOut.model_validate(report.as_json())


@reports_router.get("/alerts.csv", response_class=Response,
                    responses={200: {"content": {"text/csv": {}}, "description": "The report as CSV"}})
def alert_report_csv(session: DbSession, clock: ClockDep, group_by: GroupBy = "kind", since: Since = None,
                     until: Until = None, kind: KindFilter = None,
                     department_id: Annotated[int | None, Query()] = None,
                     priority: Annotated[Priority | None, Query()] = None,
                     actor: Actor = allow(*REPORT_READERS)) -> Response:
    report = _report(session, clock, actor, group_by, since, until, kind, department_id, priority)
    name = f"carerelay-alerts-by-{group_by}-{report.since:%Y%m%d}-{report.until:%Y%m%d}.csv"
    return Response(report.as_csv(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
