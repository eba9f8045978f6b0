"""Embedded mode for an EHR side panel: ``/embed?token=…`` signs the EHR's user in and lands in that
patient's conversations (carerelay/web/launch.py checks the token; docs/subsystems/web.md tells an
EHR team how to build one).

The launch answers with a small page that moves on to the patient by itself. The session cookie is
SameSite=Strict, and a browser withholds such a cookie on a redirect that started in another site;
a navigation our own page starts is same-site, so the next page is signed in.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from carerelay.auth.api import set_session_cookie
from carerelay.auth.deps import ClockDep, DbSession, SettingsDep, allow, client_ip, public
from carerelay.core.actor import Actor
from carerelay.messaging import inbox
from carerelay.patients import service as patients
from carerelay.web.common import EMBED_COOKIE, render, viewer_of, web_router
from carerelay.web.deeplinks import epic_links
from carerelay.web.launch import LaunchRefused, launch
from carerelay.web.patients import CARE as CARE_ROLES

router = web_router()


@router.get("/embed", response_class=HTMLResponse)
def embed_launch(request: Request, session: DbSession, clock: ClockDep, settings: SettingsDep, token: str = "",
                 actor: Actor = public()) -> Response:
    try:
        launched = launch(session=session, clock=clock, settings=settings, token=token, ip=client_ip(request),
                          user_agent=request.headers.get("user-agent"))
    except LaunchRefused as exc:
        # The refusal was audited; keep it (the unit of work commits on a normal return).
        return render(request, "embed/refused.html", viewer=None, live=False, status_code=401, reason=exc.message)
    target = f"/embed/patients/{launched.patient.id}"
    response = render(request, "embed/launched.html", viewer=None, live=False, target=target,
                      person=launched.signed_in.person)
    set_session_cookie(response, launched.signed_in.token, settings.cookie_secure, settings.session_max_hours * 3600)
    response.set_cookie(EMBED_COOKIE, str(launched.patient.id), httponly=True, samesite="strict", path="/",
                        secure=settings.cookie_secure)
    return response


@router.get("/embed/patients/{patient_id}", response_class=HTMLResponse)
def embed_patient(patient_id: int, request: Request, session: DbSession, clock: ClockDep,
                  actor: Actor = allow(*CARE_ROLES)) -> Response:
    viewer = viewer_of(request, session, actor)
    patient, encounter = patients.access_patient(session=session, clock=clock, actor=actor, patient_id=patient_id)
    team = patients.care_team(session=session, clock=clock, actor=actor, patient_id=patient.id)
    rows = [r for r in inbox.inbox(session=session, clock=clock, actor=actor) if r.patient_id == patient.id]
    return render(request, "embed/patient.html", viewer=viewer, session=session, patient=patient,
                  encounter=encounter, team=team, rows=rows,
                  links=epic_links(request.app.state.settings, mrn=patient.mrn))
