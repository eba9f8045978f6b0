"""Inbox, thread, compose and forward: the clinician's messaging pages.

Each route calls the messaging services the JSON API calls. A send that trips a policy (an order in
text, a critical result) comes back as the same page with the warning and the text kept, and a
"send anyway" choice; a double click sends once (each form carries its own Idempotency-Key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from carerelay.auth.deps import ClockDep, DbSession, signed_in
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.crypto import KeyRing
from carerelay.core.errors import Conflict, Invalid
from carerelay.directory import service as directory
from carerelay.messaging import inbox, service
from carerelay.messaging.attachments import store_upload
from carerelay.messaging.models import ConversationKind, Priority
from carerelay.patients import search as patient_search
from carerelay.patients import service as patients
from carerelay.routing import service as routing
from carerelay.scheduling import service as scheduling
from carerelay.web.common import (
    CARE,
    Viewer,
    back_to,
    form_signed_in,
    fragment,
    new_form_key,
    optional_int,
    render,
    viewer_of,
    web_router,
)
from carerelay.web.deeplinks import epic_links

router = web_router()

PRIORITIES = [p.value for p in Priority]
CARE_TEAM_ROLES = ("attending", "consulting", "referring", "admitting", "nurse")


def _key_ring(request: Request) -> KeyRing:
    keys: KeyRing = request.app.state.keys()
    return keys


# -- inbox --------------------------------------------------------------------------------------

@router.get("/inbox", response_class=HTMLResponse)
def inbox_page(request: Request, session: DbSession, clock: ClockDep, q: str = "",
               actor: Actor = signed_in()) -> Response:
    viewer = viewer_of(request, session, actor)
    rows = inbox.inbox(session=session, clock=clock, actor=actor)
    found = service.search_messages(session=session, clock=clock, actor=actor, query=q) if q.strip() else None
    policy = service.get_policy(session=session)
    return render(request, "inbox/inbox.html", viewer=viewer, session=session, rows=rows, q=q, found=found,
                  policy=policy)


@router.get("/inbox/fragment", response_class=HTMLResponse)
def inbox_fragment(request: Request, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> Response:
    viewer = viewer_of(request, session, actor)
    return fragment(request, "inbox/_rows.html", viewer=viewer,
                    rows=inbox.inbox(session=session, clock=clock, actor=actor))


# -- a thread ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Draft:
    text: str = ""
    priority: str = "routine"
    needs_ack: bool = False
    confirm: tuple[str, ...] = ()


def _thread_context(request: Request, session: Session, clock: Clock, viewer: Viewer,
                    conversation_id: int, *, header: bool = True) -> dict[str, Any]:
    """``header``: also the members, the patient and the deep links (the live refresh needs only the
    messages, so it does not read the patient again)."""
    conversation = service.access_conversation(session=session, actor=viewer.actor, conversation_id=conversation_id)
    messages = service.read_messages(session=session, clock=clock, actor=viewer.actor,
                                     conversation_id=conversation_id, limit=500)
    receipts = inbox.thread_receipts(session=session, actor=viewer.actor, messages=messages)
    members = inbox.member_names(session, [conversation_id])[conversation_id] if header else []
    patient = None
    links: list[Any] = []
    if header and conversation.patient_id is not None:
        patient, _ = patients.access_patient(session=session, clock=clock, actor=viewer.actor,
                                             patient_id=conversation.patient_id)
        links = epic_links(request.app.state.settings, mrn=patient.mrn)
    return {"conversation": conversation, "messages": messages, "receipts": receipts, "members": members,
            "patient": patient, "links": links}


def _thread_page(request: Request, session: Session, clock: Clock, viewer: Viewer, conversation_id: int, *,
                 draft: Draft | None = None, warnings: list[str] | None = None, error: str | None = None,
                 status_code: int = 200) -> Response:
    context = _thread_context(request, session, clock, viewer, conversation_id)
    return render(request, "inbox/thread.html", viewer=viewer, session=session, status_code=status_code,
                  draft=draft or Draft(), warnings=warnings or [], error=error, form_key=new_form_key(),
                  priorities=PRIORITIES, **context)


@router.get("/c/{conversation_id}", response_class=HTMLResponse)
def thread(conversation_id: int, request: Request, session: DbSession, clock: ClockDep,
           actor: Actor = signed_in()) -> Response:
    return _thread_page(request, session, clock, viewer_of(request, session, actor), conversation_id)


@router.get("/c/{conversation_id}/messages", response_class=HTMLResponse)
def thread_fragment(conversation_id: int, request: Request, session: DbSession, clock: ClockDep,
                    actor: Actor = signed_in()) -> Response:
    viewer = viewer_of(request, session, actor)
    context = _thread_context(request, session, clock, viewer, conversation_id, header=False)
    return fragment(request, "inbox/_messages.html", viewer=viewer, **context)


def _uploads(request: Request, session: Session, clock: Clock, actor: Actor,
             files: list[UploadFile | None]) -> tuple[int, ...]:
    limit = service.get_policy(session=session).attachment_max_bytes
    ids = []
    for upload in files:
        if upload is None or not upload.filename:
            continue
        data = upload.file.read(limit + 1)
        if not data:
            continue
        ids.append(store_upload(session=session, clock=clock, actor=actor, keys=_key_ring(request), data=data,
                                max_bytes=limit).id)
    return tuple(ids)


def _priority(value: str) -> Priority:
    try:
        return Priority(value)
    except ValueError:
        raise Invalid(f"priority must be one of {', '.join(PRIORITIES)}", field="priority") from None


@router.post("/c/{conversation_id}/send", response_class=HTMLResponse)
def send(
    conversation_id: int, request: Request, session: DbSession, clock: ClockDep,
    text: Annotated[str, Form(max_length=service.MAX_TEXT)] = "",
    priority: Annotated[str, Form(max_length=10)] = "routine",
    needs_ack: Annotated[bool, Form()] = False,
    confirm: Annotated[list[str] | None, Form()] = None,
    key: Annotated[str, Form(max_length=120)] = "",
    mrn: Annotated[str, Form(max_length=80)] = "",
    photo: Annotated[UploadFile | None, File()] = None,
    audio: Annotated[UploadFile | None, File()] = None,
    actor: Actor = form_signed_in(),
) -> Response:
    viewer = viewer_of(request, session, actor)
    draft = Draft(text=text, priority=priority, needs_ack=needs_ack, confirm=tuple(confirm or ()))
    try:
        with session.begin_nested():
            patient_id = None
            if mrn.strip():
                found = patients.find_patient(session=session, ref=mrn.strip())
                if found is None:
                    raise Invalid(f"no patient with MRN {mrn.strip()}", field="mrn")
                patient_id = found.id
            service.check_text(session=session, text=text, confirm=draft.confirm)
            outgoing = service.SendRequest(conversation_id=conversation_id, text=text, priority=_priority(priority),
                                           needs_ack=needs_ack, patient_id=patient_id,
                                           attachment_ids=_uploads(request, session, clock, actor, [photo, audio]),
                                           confirm=draft.confirm)
            service.send_message(session=session, clock=clock, actor=actor, request=outgoing,
                                 idempotency_key=f"web:{key}" if key else None)
    except service.ConfirmationRequired as exc:
        return _thread_page(request, session, clock, viewer, conversation_id, draft=draft, warnings=exc.warnings,
                            error=exc.message, status_code=422)
    except (Invalid, Conflict) as exc:
        return _thread_page(request, session, clock, viewer, conversation_id, draft=draft, error=exc.message,
                            status_code=409 if isinstance(exc, Conflict) else 422)
    return back_to(f"/c/{conversation_id}#compose")


@router.post("/c/{conversation_id}/ack/{message_id}", response_class=HTMLResponse)
def acknowledge(conversation_id: int, message_id: int, session: DbSession, clock: ClockDep,
                actor: Actor = form_signed_in()) -> Response:
    service.access_conversation(session=session, actor=actor, conversation_id=conversation_id)
    service.mark_receipts(session=session, clock=clock, actor=actor, message_ids=[message_id], state="acknowledged")
    return back_to(f"/c/{conversation_id}#m{message_id}")


# -- compose: to a person, a role, a group, a patient's care team ---------------------------------

@dataclass(frozen=True)
class Option:
    address: str
    label: str
    detail: str


def _people_options(session: Session, q: str, me: int) -> list[Option]:
    rows = directory.search_people(session=session, query=directory.PersonQuery(q=q), limit=12)
    return [Option(f"person:{r['id']}", r["display_name"], r["profession"]) for r in rows if r["id"] != me]


def _reach(session: Session, clock: Clock, address: str) -> str:
    resolution = routing.preview(session=session, clock=clock, address=address)
    if resolution.empty:
        return "reaches no one right now" + (f" ({'; '.join(resolution.notes)})" if resolution.notes else "")
    return "now: " + "; ".join(f"{r.name} ({r.reason})" for r in resolution.recipients)


def _label(session: Session, address: str) -> str:
    """What a chosen address is called on the page: the person's or group's name, not its id."""
    scheme, _, ref = address.partition(":")
    if scheme == "person" and ref.isdigit():
        return directory.get_person(session=session, person_id=int(ref)).display_name
    if scheme in ("group", "team") and ref.isdigit():
        return directory.get_group(session=session, group_id=int(ref)).name
    if scheme == "role":
        return f"{ref} (whoever is on call)"
    if scheme == "pager":
        return f"pager {ref}"
    return address


def _role_options(session: Session, clock: Clock, q: str) -> list[Option]:
    wanted = q.strip().lower()
    names: dict[str, str] = {}
    for assignment in scheduling.list_assignments(session=session):
        if not assignment.active or assignment.kind not in ("shift", "call"):
            continue
        haystack = f"{assignment.name} {assignment.code} {assignment.department.name}".lower()
        if not wanted or wanted in haystack:
            names.setdefault(assignment.name.lower(), assignment.name)
    return [Option(f"role:{name}", name, _reach(session, clock, f"role:{name}"))
            for _, name in sorted(names.items())][:12]


def _group_options(session: Session, q: str) -> list[Option]:
    wanted = q.strip().lower()
    return [Option(f"{g.kind}:{g.id}", g.name, g.kind) for g in directory.list_groups(session=session)
            if wanted and (wanted in g.name.lower() or wanted in g.code.lower())][:12]


def _care_team_options(session: Session, clock: Clock, viewer: Viewer, patient_id: int) -> list[Option]:
    rows = patients.care_team(session=session, clock=clock, actor=viewer.actor, patient_id=patient_id)
    options = []
    seen = set()
    for row in rows:
        role = "nurse" if "nurse" in row.role_text.lower().split() else row.role.lower()
        if role in seen:
            continue
        seen.add(role)
        address = f"careteam:{patient_id}/{role}"
        options.append(Option(address, f"{(row.role_text or row.role).title()} of this patient",
                              _reach(session, clock, address)))
    return options


def _compose_page(request: Request, session: Session, clock: Clock, viewer: Viewer, *, q: str = "",
                  to: str = "", patient_id: int | None = None, pq: str = "", forward: int | None = None,
                  draft: Draft | None = None, warnings: list[str] | None = None, error: str | None = None,
                  status_code: int = 200) -> Response:
    patient = None
    care_team: list[Option] = []
    may_read_patients = viewer.has(*CARE)
    if patient_id is not None:
        patient, _ = patients.access_patient(session=session, clock=clock, actor=viewer.actor, patient_id=patient_id)
        care_team = _care_team_options(session, clock, viewer, patient_id)
    found_patients = (patient_search.search_patients(session=session, clock=clock, actor=viewer.actor, query=pq)
                      if pq.strip() and may_read_patients else [])
    chosen = Option(to, _label(session, to), _reach(session, clock, to)) if to else None
    forwarding = None
    if forward is not None:
        forwarding = service.access_conversation(session=session, actor=viewer.actor, conversation_id=forward)
    return render(
        request, "inbox/compose.html", viewer=viewer, session=session, status_code=status_code, q=q, to=to,
        chosen=chosen, people=_people_options(session, q, viewer.id) if q.strip() else [],
        roles=[] if forwarding else _role_options(session, clock, q),
        groups=_group_options(session, q), care_team=care_team, patient=patient, pq=pq,
        found_patients=found_patients, may_read_patients=may_read_patients, forwarding=forwarding,
        draft=draft or Draft(), warnings=warnings or [], error=error, form_key=new_form_key(), priorities=PRIORITIES)


@router.get("/compose", response_class=HTMLResponse)
def compose(request: Request, session: DbSession, clock: ClockDep, q: str = "", to: str = "",
            patient_id: str = "", pq: str = "", forward: str = "", actor: Actor = signed_in()) -> Response:
    viewer = viewer_of(request, session, actor)
    return _compose_page(request, session, clock, viewer, q=q, to=to, patient_id=optional_int(patient_id), pq=pq,
                         forward=optional_int(forward))


@router.post("/compose", response_class=HTMLResponse)
def compose_send(
    request: Request, session: DbSession, clock: ClockDep,
    address: Annotated[str, Form(max_length=200)] = "",
    patient_id: Annotated[str, Form(max_length=20)] = "",
    forward: Annotated[str, Form(max_length=20)] = "",
    text: Annotated[str, Form(max_length=service.MAX_TEXT)] = "",
    priority: Annotated[str, Form(max_length=10)] = "routine",
    needs_ack: Annotated[bool, Form()] = False,
    confirm: Annotated[list[str] | None, Form()] = None,
    key: Annotated[str, Form(max_length=120)] = "",
    photo: Annotated[UploadFile | None, File()] = None,
    audio: Annotated[UploadFile | None, File()] = None,
    actor: Actor = form_signed_in(),
) -> Response:
    viewer = viewer_of(request, session, actor)
    draft = Draft(text=text, priority=priority, needs_ack=needs_ack, confirm=tuple(confirm or ()))
    pid, forward_id = optional_int(patient_id), optional_int(forward)

    def again(*, warnings: list[str] | None = None, error: str, status_code: int) -> Response:
        return _compose_page(request, session, clock, viewer, to=address, patient_id=pid, forward=forward_id,
                             draft=draft, warnings=warnings, error=error, status_code=status_code)

    if not address:
        return again(error="Choose who the message is for.", status_code=422)
    try:
        with session.begin_nested():
            if text.strip() or forward_id is None:
                service.check_text(session=session, text=text, confirm=draft.confirm)
            if address.startswith("person:"):
                member = optional_int(address.removeprefix("person:"))
                conversation = service.create_conversation(session=session, clock=clock, actor=actor,
                                                           kind=ConversationKind.DIRECT,
                                                           member_ids=[member] if member is not None else [],
                                                           patient_id=pid)
            else:
                conversation = service.create_conversation(session=session, clock=clock, actor=actor,
                                                           kind=ConversationKind.ADDRESS, address=address,
                                                           title=address, patient_id=pid)
            if forward_id is not None:
                service.forward(session=session, clock=clock, actor=actor, to_conversation_id=conversation.id,
                                conversation_id=forward_id)
            if text.strip():
                outgoing = service.SendRequest(
                    conversation_id=conversation.id, text=text, priority=_priority(priority), needs_ack=needs_ack,
                    patient_id=pid, attachment_ids=_uploads(request, session, clock, actor, [photo, audio]),
                    confirm=draft.confirm)
                service.send_message(session=session, clock=clock, actor=actor, request=outgoing,
                                     idempotency_key=f"web:{key}" if key else None)
    except service.ConfirmationRequired as exc:
        return again(warnings=exc.warnings, error=exc.message, status_code=422)
    except (Invalid, Conflict) as exc:
        return again(error=exc.message, status_code=409 if isinstance(exc, Conflict) else 422)
    return back_to(f"/c/{conversation.id}")
