"""Alerts: mine, with accept / reject / call back / acknowledge, the read-back, and the trail in view.

Built on the generic alerts service, so any kind (critical results, STAT orders, needs-ack
messages, pages, nurse call once it arrives) shows the same way: the alert's own choices become
its buttons, and the escalation trail says who was reached, when and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from carerelay.alerts import service as alerts
from carerelay.alerts.models import Alert, AlertEvent, AlertStatus
from carerelay.auth.deps import ClockDep, DbSession, signed_in
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import NotFound
from carerelay.directory import service as directory
from carerelay.escalation import service as escalation
from carerelay.web.common import Viewer, back_to, form_signed_in, fragment, render, safe_next, viewer_of, web_router

router = web_router()

EVENT_LABELS = {
    "raised": "Raised", "escalation_started": "Escalation started", "notified": "Notified", "held": "Held by a rule",
    "forwarded": "Forwarded by a rule", "floor": "Platform floor applied", "followup": "Follow-up sent",
    "followup_impossible": "Follow-up impossible", "rejected": "Rejected", "acknowledged": "Acknowledged",
    "escalation_stopped": "Escalation stopped", "readback": "Read-back recorded", "no_one": "Reached no one",
    "fallback_empty": "Fallback reached no one", "repeat": "Repeating the chain", "exhausted": "Every step tried",
}


@dataclass(frozen=True)
class TrailLine:
    at: Any
    kind: str
    label: str
    person: str | None
    detail: str


def _names(session: Session, ids: set[int]) -> dict[int, str]:
    names = {}
    for person_id in sorted(ids):
        try:
            names[person_id] = directory.get_person(session=session, person_id=person_id).display_name
        except NotFound:
            names[person_id] = f"person {person_id}"
    return names


def _detail(event: AlertEvent) -> str:
    d = event.detail or {}
    if event.kind == "raised":
        return f"from {d.get('source', '?')}, to {d.get('address', '?')}"
    if event.kind == "escalation_started":
        return f"policy {d.get('policy')}: {d.get('steps')} step(s), repeat {d.get('repeat')}"
    if event.kind == "notified":
        return f"step {int(d.get('step', 0)) + 1}: {d.get('reason', '')}"
    if event.kind == "escalation_stopped":
        return f"{d.get('state')}; {d.get('timers_cancelled', 0)} pending timer(s) cancelled"
    if event.kind == "acknowledged":
        return f"response: {d.get('response')}"
    if event.kind == "readback":
        return str(d.get("text", ""))
    if event.kind in ("no_one", "fallback_empty"):
        return f"{d.get('address')}: {d.get('explanation')}"
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(d.items()))


def _trail(session: Session, events: list[AlertEvent]) -> list[TrailLine]:
    names = _names(session, {e.person_id for e in events if e.person_id is not None})
    return [TrailLine(at=e.at, kind=e.kind, label=EVENT_LABELS.get(e.kind, e.kind.replace("_", " ")),
                      person=names.get(e.person_id) if e.person_id is not None else None, detail=_detail(e))
            for e in events]


def buttons(alert: Alert) -> list[str]:
    """The alert's own choices (Accept, Reject, Call back…), or Acknowledge when it offers none."""
    if alert.status != AlertStatus.OPEN:
        return []
    return list(alert.choices) if alert.choices else ["Acknowledge"]


def _list_context(session: Session, viewer: Viewer) -> dict[str, Any]:
    mine = alerts.my_alerts(session=session, actor=viewer.actor, open_only=False, limit=60)
    return {"open": [a for a in mine if a.status == AlertStatus.OPEN],
            "recent": [a for a in mine if a.status != AlertStatus.OPEN][:20], "buttons": buttons}


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, session: DbSession, actor: Actor = signed_in()) -> Response:
    viewer = viewer_of(request, session, actor)
    return render(request, "alerts/alerts.html", viewer=viewer, session=session, **_list_context(session, viewer))


@router.get("/alerts/fragment", response_class=HTMLResponse)
def alerts_fragment(request: Request, session: DbSession, actor: Actor = signed_in()) -> Response:
    viewer = viewer_of(request, session, actor)
    return fragment(request, "alerts/_list.html", viewer=viewer, **_list_context(session, viewer))


def _detail_context(session: Session, clock: Clock, viewer: Viewer, alert_id: int) -> dict[str, Any]:
    alert, events = alerts.trail(session=session, clock=clock, actor=viewer.actor, alert_id=alert_id)
    run = escalation.run_for_alert(session=session, alert_id=alert_id)
    acknowledged_by = _names(session, {alert.acknowledged_by})[alert.acknowledged_by] if alert.acknowledged_by \
        else None
    return {"alert": alert, "trail": _trail(session, events), "run": run, "buttons": buttons,
            "acknowledged_by": acknowledged_by,
            "needs_readback": alert.status == AlertStatus.ACKNOWLEDGED and alert.kind == "critical_result"
            and alert.acknowledged_by == viewer.id}


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(alert_id: int, request: Request, session: DbSession, clock: ClockDep,
               actor: Actor = signed_in()) -> Response:
    viewer = viewer_of(request, session, actor)
    return render(request, "alerts/alert.html", viewer=viewer, session=session,
                  **_detail_context(session, clock, viewer, alert_id))


@router.get("/alerts/{alert_id}/fragment", response_class=HTMLResponse)
def alert_fragment(alert_id: int, request: Request, session: DbSession, clock: ClockDep,
                   actor: Actor = signed_in()) -> Response:
    viewer = viewer_of(request, session, actor)
    return fragment(request, "alerts/_detail.html", viewer=viewer, **_detail_context(session, clock, viewer, alert_id))


@router.post("/alerts/{alert_id}/respond", response_class=HTMLResponse)
def respond(alert_id: int, session: DbSession, clock: ClockDep, choice: Annotated[str, Form(max_length=40)],
            next: Annotated[str, Form(max_length=300)] = "", actor: Actor = form_signed_in()) -> Response:
    if choice.strip().lower() == "acknowledge":
        alerts.acknowledge(session=session, clock=clock, actor=actor, alert_id=alert_id)
    else:
        alerts.respond(session=session, clock=clock, actor=actor, alert_id=alert_id, choice=choice)
    return back_to(safe_next(next, f"/alerts/{alert_id}"))


@router.post("/alerts/{alert_id}/readback", response_class=HTMLResponse)
def readback(alert_id: int, session: DbSession, clock: ClockDep, text: Annotated[str, Form(max_length=2000)],
             actor: Actor = form_signed_in()) -> Response:
    alerts.record_readback(session=session, clock=clock, actor=actor, alert_id=alert_id, text=text)
    return back_to(f"/alerts/{alert_id}")
