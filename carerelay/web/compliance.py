"""The compliance officer's pages: audit search, the audit-chain check, discovery and case export
(with legal holds), and the time-to-acknowledge report with its charts.

Discovery, holds and export are for compliance officers only (as in the API); audit search and the
chain check also for system administrators. Every search and export is itself audited.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, Response

from carerelay.alerts import trends
from carerelay.audit import service as audit
from carerelay.auth.deps import ClockDep, DbSession, allow
from carerelay.core.actor import Actor
from carerelay.core.errors import Invalid
from carerelay.directory import service as directory
from carerelay.directory.models import Role
from carerelay.messaging import compliance, inbox
from carerelay.patients import service as patients
from carerelay.web.charts import Bar, bar_chart, histogram_bars
from carerelay.web.common import back_to, form_allow, optional_int, render, viewer_of, web_router

router = web_router()

AUDITORS = (Role.COMPLIANCE_OFFICER, Role.SYSTEM_ADMIN)
OFFICERS = (Role.COMPLIANCE_OFFICER,)
PERIODS = {"7": 7, "30": 30, "90": 90, "365": 365}


def _local_instant(value: str, field: str, tz: Any, *, end: bool = False) -> datetime | None:
    """A date (YYYY-MM-DD, a whole local day) or a local date and time, in the viewer's zone."""
    value = value.strip()
    if not value:
        return None
    try:
        if len(value) == 10:
            day = datetime.fromisoformat(value).date()
            local = datetime.combine(day + timedelta(days=1) if end else day, time(0), tzinfo=tz)
        else:
            parsed = datetime.fromisoformat(value)
            local = parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
    except ValueError:
        raise Invalid(f"{field}: write a date (YYYY-MM-DD) or a date and time", field=field) from None
    return local


@router.get("/compliance", response_class=HTMLResponse)
def compliance_home(request: Request, session: DbSession, actor: Actor = allow(*AUDITORS)) -> Response:
    return render(request, "compliance/index.html", viewer=viewer_of(request, session, actor), session=session)


@router.get("/compliance/audit", response_class=HTMLResponse)
def audit_search(request: Request, session: DbSession, clock: ClockDep, username: str = "", object_type: str = "",
                 object_id: str = "", action: str = "", since: str = "", until: str = "", after_seq: str = "",
                 actor: Actor = allow(*AUDITORS)) -> Response:
    viewer = viewer_of(request, session, actor)
    filters = {"username": username, "object_type": object_type, "object_id": object_id, "action": action,
               "since": since, "until": until}
    searched = any(v.strip() for v in filters.values()) or bool(after_seq)
    rows: list[Any] = []
    if searched:
        actor_id = None
        if username.strip():
            person = directory.find_person_by(session=session, field="username", value=username.strip().lower())
            if person is None:
                raise Invalid(f"no person with user name {username.strip()!r}", field="username")
            actor_id = person.id
        rows = audit.search_entries(
            session=session, actor_id=actor_id, object_type=object_type.strip() or None,
            object_id=object_id.strip() or None, action=action.strip() or None,
            since=_local_instant(since, "since", viewer.tz), until=_local_instant(until, "until", viewer.tz, end=True),
            after_seq=optional_int(after_seq) or 0, limit=200)
        audit.record(session=session, clock=clock, actor=actor, action="audit.search", object_type="audit",
                     detail={k: v for k, v in filters.items() if v} | {"results": len(rows)})
    return render(request, "compliance/audit.html", viewer=viewer, session=session, rows=rows, filters=filters,
                  searched=searched, more=rows[-1].seq if len(rows) == 200 else None)


@router.get("/compliance/verify", response_class=HTMLResponse)
def verify(request: Request, session: DbSession, clock: ClockDep, run: str = "",
           actor: Actor = allow(*AUDITORS)) -> Response:
    viewer = viewer_of(request, session, actor)
    report = audit.verify_chain(session=session) if run else None
    if report is not None:
        audit.record(session=session, clock=clock, actor=actor, action="audit.verify", object_type="audit",
                     detail={"ok": report.ok, "entries": report.entries, "problem": report.problem})
    return render(request, "compliance/verify.html", viewer=viewer, session=session, report=report,
                  checked_at=clock.now() if report else None)


@router.get("/compliance/discovery", response_class=HTMLResponse)
def discovery(request: Request, session: DbSession, clock: ClockDep, text: str = "", mrn: str = "",
              username: str = "", since: str = "", until: str = "", held: str = "",
              actor: Actor = allow(*OFFICERS)) -> Response:
    viewer = viewer_of(request, session, actor)
    filters = {"text": text, "mrn": mrn, "username": username, "since": since, "until": until}
    results: list[Any] | None = None
    conversations: dict[int, list[Any]] = {}
    names: dict[int, list[tuple[int, str]]] = {}
    if any(v.strip() for v in filters.values()):
        patient_id = person_id = None
        if mrn.strip():
            patient = patients.find_patient(session=session, ref=mrn.strip())
            if patient is None:
                raise Invalid(f"no patient with MRN {mrn.strip()}", field="mrn")
            patient_id = patient.id
        if username.strip():
            person = directory.find_person_by(session=session, field="username", value=username.strip().lower())
            if person is None:
                raise Invalid(f"no person with user name {username.strip()!r}", field="username")
            person_id = person.id
        query = compliance.Discovery(text=text.strip() or None, patient_id=patient_id, person_id=person_id,
                                     since=_local_instant(since, "since", viewer.tz),
                                     until=_local_instant(until, "until", viewer.tz, end=True))
        results = compliance.discover(session=session, clock=clock, actor=actor, query=query, limit=1000)
        for message in results:
            conversations.setdefault(message.conversation_id, []).append(message)
        names = inbox.member_names(session, list(conversations))
    holds = {h.conversation_id: h for h in compliance.list_holds(session=session) if h.released_at is None}
    return render(request, "compliance/discovery.html", viewer=viewer, session=session, filters=filters,
                  results=results, conversations=conversations, names=names, holds=holds, held=held)


@router.post("/compliance/export", response_class=Response)
def export(request: Request, session: DbSession, clock: ClockDep,
           conversation_ids: Annotated[list[int] | None, Form()] = None,
           reason: Annotated[str, Form(max_length=500)] = "", actor: Actor = form_allow(*OFFICERS)) -> Response:
    if not conversation_ids:
        raise Invalid("tick the conversations to export", field="conversation_ids")
    if len(reason.strip()) < 3:
        raise Invalid("say why (the case or request number): it goes in the audit log", field="reason")
    data = compliance.export_case(session=session, clock=clock, actor=actor, keys=request.app.state.keys(),
                                  conversation_ids=conversation_ids, reason=reason.strip())
    name = f"carerelay-case-{clock.now():%Y%m%dT%H%M%SZ}.zip"
    return Response(data, media_type="application/zip",
                    headers={"Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/compliance/holds", response_class=HTMLResponse)
def place_hold(session: DbSession, clock: ClockDep, conversation_id: Annotated[int, Form()],
               reason: Annotated[str, Form(max_length=500)], back: Annotated[str, Form(max_length=2000)] = "",
               actor: Actor = form_allow(*OFFICERS)) -> Response:
    if len(reason.strip()) < 3:
        raise Invalid("say why the conversation is held", field="reason")
    compliance.place_hold(session=session, clock=clock, actor=actor, conversation_id=conversation_id,
                          reason=reason.strip())
    target = back if back.startswith("/compliance/discovery") else "/compliance/discovery"
    return back_to(target + ("&" if "?" in target else "?") + f"held={conversation_id}")


@router.get("/compliance/reports/tta", response_class=HTMLResponse)
def tta_report(request: Request, session: DbSession, clock: ClockDep, kind: str = "critical_result",
               days: str = "30", actor: Actor = allow(*AUDITORS)) -> Response:
    viewer = viewer_of(request, session, actor)
    span = PERIODS.get(days, 30)
    local_today = clock.now().astimezone(viewer.tz).date()
    until = datetime.combine(local_today + timedelta(days=1), time(0), tzinfo=viewer.tz)
    since = until - timedelta(days=span)
    report = trends.time_to_acknowledge(session=session, clock=clock, actor=actor, since=since, until=until,
                                         tz=viewer.tz, kind=kind)

    def minutes(value: float | None) -> float | None:
        return value / 60 if value is not None else None

    daily = bar_chart(
        title="Median time to acknowledge, per day", chart_id="by-day", unit="minutes", mark_label="90th percentile",
        description=f"{report.overall.count} {kind} alerts from {since:%Y-%m-%d} to {local_today:%Y-%m-%d}",
        bars=[Bar(g.label[5:], minutes(g.median_seconds), minutes(g.p90_seconds), note=f"{g.count} alerts, "
                  f"{g.open} open") for g in report.by_day])
    spread = bar_chart(
        title="How long acknowledgement took", chart_id="spread", unit="alerts", counts=True,
        description="Number of alerts by time to acknowledge, and those still open",
        bars=histogram_bars([s.seconds for s in report.samples if s.seconds is not None], report.overall.open))
    units = bar_chart(
        title="Median time to acknowledge, per unit", chart_id="by-unit", unit="minutes", mark_label="90th percentile",
        description="Median and 90th percentile per unit",
        bars=[Bar(g.label, minutes(g.median_seconds), minutes(g.p90_seconds)) for g in report.by_unit])
    return render(request, "compliance/tta.html", viewer=viewer, session=session, report=report, kind=kind,
                  kinds=sorted({"critical_result", "all", *trends.kinds(session=session)}), days=str(span),
                  periods=list(PERIODS), charts=[daily, spread, units], since=since, until=until)
