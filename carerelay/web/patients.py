"""Patients: the census per unit, a patient's entry and care team, their results and my conversations
about them, with the Epic deep links. Every read goes through the audited patients services."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from carerelay.auth.deps import ClockDep, DbSession, allow
from carerelay.core.actor import Actor
from carerelay.directory.models import Role
from carerelay.messaging import inbox
from carerelay.patients import search, service
from carerelay.web.common import render, viewer_of, web_router
from carerelay.web.deeplinks import epic_links

router = web_router()

CARE = (Role.CLINICIAN, Role.NURSE, Role.OPERATOR, Role.SYSTEM_ADMIN)


@router.get("/patients", response_class=HTMLResponse)
def patients_page(request: Request, session: DbSession, clock: ClockDep, unit: str = "", q: str = "",
                  actor: Actor = allow(*CARE)) -> Response:
    viewer = viewer_of(request, session, actor)
    units = search.list_units(session=session)
    chosen = unit or (units[0].code if units and not q else "")
    census = service.census(session=session, clock=clock, actor=actor, unit_code=chosen)[1] if chosen else None
    found = search.search_patients(session=session, clock=clock, actor=actor, query=q) if q.strip() else None
    return render(request, "patients/patients.html", viewer=viewer, session=session, units=units, unit=chosen,
                  census=census, q=q, found=found)


@router.get("/patients/{patient_id}", response_class=HTMLResponse)
def patient_page(patient_id: int, request: Request, session: DbSession, clock: ClockDep,
                 actor: Actor = allow(*CARE)) -> Response:
    viewer = viewer_of(request, session, actor)
    patient, encounter = service.access_patient(session=session, clock=clock, actor=actor, patient_id=patient_id)
    team = service.care_team(session=session, clock=clock, actor=actor, patient_id=patient.id)
    results = service.list_observations(session=session, clock=clock, actor=actor, patient_id=patient.id,
                                        critical_only=True, limit=20)
    conversations = [r for r in inbox.inbox(session=session, clock=clock, actor=actor) if r.patient_id == patient.id]
    return render(request, "patients/patient.html", viewer=viewer, session=session, patient=patient,
                  encounter=encounter, team=team, results=results, rows=conversations,
                  links=epic_links(request.app.state.settings, mrn=patient.mrn))
