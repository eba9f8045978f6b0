"""Messaging routes: conversations, messages, attachments, receipts, forwarding, search, compliance.

There is deliberately no route to edit, retract or delete a message.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, File, Header, Query, Request, Response, UploadFile, status
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.auth.deps import (
    Caller,
    ClockDep,
    DbSession,
    allow,
    get_clock,
    get_db,
    presented_token,
    signed_in,
    signed_in_caller,
)
from carerelay.core.actor import Actor
from carerelay.core.crypto import KeyRing
from carerelay.core.errors import Invalid, NotFound
from carerelay.core.fastlane import lane
from carerelay.directory.models import Role
from carerelay.messaging import compliance, service
from carerelay.messaging.attachments import blob_of, open_blob, served_type, store_upload
from carerelay.messaging.models import Attachment, Message
from carerelay.messaging.schemas import (
    AttachmentOut,
    ConversationIn,
    ConversationOut,
    ExportIn,
    ForwardIn,
    HoldIn,
    HoldOut,
    MemberIn,
    MessageIn,
    MessageOut,
    PolicyOut,
    PolicyPatch,
    PurgeOut,
    ReceiptOut,
    ReceiptsChanged,
    ReceiptsIn,
)

router = APIRouter(prefix="/api", tags=["messaging"])

COMPLIANCE = (Role.COMPLIANCE_OFFICER,)
IDEMPOTENCY_KEY_MAX = 120
PATIENT_DATA_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache", "X-Content-Type-Options": "nosniff"}


def key_ring(request: Request) -> KeyRing:
    keys: KeyRing = request.app.state.keys()
    return keys


def message_out(view: service.MessageView) -> MessageOut:
    return MessageOut.model_validate(view.as_json())


_MESSAGE_JSON = TypeAdapter(service.MessageView)


def message_json(view: service.MessageView) -> bytes:
    """The send's answer: ``MessageOut``'s JSON, serialized from the view without building the model
    (same fields in the same order; tests/unit/messaging/test_message_json.py holds them equal)."""
    return _MESSAGE_JSON.dump_json(view)


@router.get("/messaging/policy", response_model=PolicyOut)
def get_policy(session: DbSession, actor: Actor = signed_in()) -> PolicyOut:
    return PolicyOut.model_validate(service.get_policy(session=session))


@router.patch("/messaging/policy", response_model=PolicyOut)
def update_policy(body: PolicyPatch, session: DbSession, clock: ClockDep,
                  actor: Actor = allow(Role.SYSTEM_ADMIN)) -> PolicyOut:
    row = service.update_policy(session=session, clock=clock, actor=actor,
                                changes=body.model_dump(exclude_unset=True))
    return PolicyOut.model_validate(row)


@router.post("/conversations", response_model=ConversationOut, status_code=status.HTTP_201_CREATED)
def create_conversation(body: ConversationIn, session: DbSession, clock: ClockDep,
                        actor: Actor = signed_in()) -> ConversationOut:
    conversation = service.create_conversation(session=session, clock=clock, actor=actor, **body.model_dump())
    return ConversationOut.model_validate(service.conversation_json(session, conversation))


@router.get("/conversations", response_model=list[ConversationOut])
def list_conversations(session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> list[ConversationOut]:
    rows = service.list_conversations(session=session, clock=clock, actor=actor)
    return [ConversationOut.model_validate(service.conversation_json(session, c)) for c in rows]


@router.get("/conversations/{conversation_id}", response_model=ConversationOut)
def get_conversation(conversation_id: int, session: DbSession, actor: Actor = signed_in()) -> ConversationOut:
    conversation = service.access_conversation(session=session, actor=actor, conversation_id=conversation_id)
    return ConversationOut.model_validate(service.conversation_json(session, conversation))


@router.post("/conversations/{conversation_id}/members", response_model=ConversationOut)
def add_member(conversation_id: int, body: MemberIn, session: DbSession, clock: ClockDep,
               actor: Actor = signed_in()) -> ConversationOut:
    conversation = service.add_member(session=session, clock=clock, actor=actor, conversation_id=conversation_id,
                                      person_id=body.person_id)
    return ConversationOut.model_validate(service.conversation_json(session, conversation))


@router.get("/conversations/{conversation_id}/messages", response_model=list[MessageOut])
def read_messages(
    conversation_id: int, session: DbSession, clock: ClockDep,
    after_seq: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = 100,
    actor: Actor = signed_in(),
) -> list[MessageOut]:
    views = service.read_messages(session=session, clock=clock, actor=actor, conversation_id=conversation_id,
                                  after_seq=after_seq, limit=limit)
    return [message_out(v) for v in views]


@router.post(
    "/conversations/{conversation_id}/messages", response_model=MessageOut, status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "another request with this Idempotency-Key is in progress, or the "
                                    "conversation is about another patient"},
               422: {"description": "invalid, blocked by policy, or a warning to confirm (field 'confirm')"}},
)
async def send_message(
    conversation_id: int, body: MessageIn, clock: ClockDep,
    idempotency_key: Annotated[str | None, Header(max_length=IDEMPOTENCY_KEY_MAX)] = None,
    caller: Caller = signed_in_caller(),
) -> Response:
    """The hottest route: the sign-in check, the send and the end of its unit of work in one thread (on
    SQLite the writer's, ``Database.run``), the answer serialized once."""
    request = service.SendRequest(conversation_id=conversation_id, text=body.text, priority=body.priority,
                                  needs_ack=body.needs_ack, patient_id=body.patient_id,
                                  attachment_ids=tuple(body.attachment_ids), confirm=tuple(body.confirm))

    def send(session: Session) -> tuple[service.MessageView, bool]:
        return service.send_message(session=session, clock=clock, actor=caller.actor(session), request=request,
                                    idempotency_key=idempotency_key)

    try:
        view, replayed = await get_db(caller.request).run(send)
    except service.ConfirmationRequired as exc:
        return JSONResponse({"detail": exc.message, "field": "confirm", "warnings": exc.warnings}, status_code=422)
    return Response(message_json(view), status_code=status.HTTP_201_CREATED,
                    media_type="application/json", headers={"Idempotent-Replayed": "true"} if replayed else None)


async def _send_lane(request: Request, found: re.Match[str]) -> Response | None:
    """``send_message`` for a well-formed request (core/fastlane.py): a bearer token or session cookie,
    a JSON body that is a valid ``MessageIn``, at most one Idempotency-Key within its length. Anything
    else is declined before the database is touched, and the route answers it (its 401s and 422s)."""
    keys = request.headers.getlist("idempotency-key")
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json" or len(keys) > 1 or (keys and len(keys[0]) > IDEMPOTENCY_KEY_MAX) \
            or not presented_token(request):
        return None
    try:
        body = MessageIn.model_validate(json.loads(await request.body()))
    except Exception:  # not JSON, or not a valid message: the route says what is wrong, in its own terms
        return None
    return await send_message(int(found[1]), body, get_clock(request), keys[0] if keys else None, Caller(request))


SEND_LANE = lane(router, "POST", "/api/conversations/{conversation_id}/messages",
                 r"/api/conversations/([0-9]{1,18})/messages", _send_lane)


@router.post("/attachments", response_model=AttachmentOut, status_code=status.HTTP_201_CREATED)
def upload_attachment(request: Request, file: Annotated[UploadFile, File()], session: DbSession, clock: ClockDep,
                      actor: Actor = signed_in()) -> AttachmentOut:
    """Camera images and audio clips only, checked by content; encrypted at rest."""
    limit = service.get_policy(session=session).attachment_max_bytes
    data = file.file.read(limit + 1)
    attachment = store_upload(session=session, clock=clock, actor=actor, keys=key_ring(request), data=data,
                              max_bytes=limit)
    blob = blob_of(session, attachment)
    return AttachmentOut(id=attachment.id, content_type=blob.content_type, size=blob.size)


@router.get("/attachments/{attachment_id}", response_class=Response,
            responses={200: {"description": "the attachment, inline, never cached"}})
def get_attachment(attachment_id: int, request: Request, session: DbSession, clock: ClockDep,
                   actor: Actor = signed_in()) -> Response:
    attachment = session.get(Attachment, attachment_id)
    if attachment is None:
        raise NotFound(f"no attachment {attachment_id}")
    if attachment.message_id is None:
        if attachment.owner_id != actor.person_id:
            raise NotFound(f"no attachment {attachment_id}")
    else:
        message = session.get_one(Message, attachment.message_id)
        service.access_conversation(session=session, actor=actor, conversation_id=message.conversation_id)
    blob = blob_of(session, attachment)
    data = open_blob(keys=key_ring(request), blob=blob)
    audit.record(session=session, clock=clock, actor=actor, action="attachment.read", object_type="attachment",
                 object_id=attachment_id, detail={"message_id": attachment.message_id})
    return Response(data, media_type=served_type(blob.content_type),
                    headers={**PATIENT_DATA_HEADERS, "Content-Disposition": "inline"})


@router.post("/receipts", response_model=ReceiptsChanged)
def mark_receipts(body: ReceiptsIn, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> ReceiptsChanged:
    changed = service.mark_receipts(session=session, clock=clock, actor=actor, message_ids=body.message_ids,
                                    state=body.state)
    return ReceiptsChanged(changed=changed)


@router.post("/messages/{message_id}/acknowledge", response_model=ReceiptsChanged)
def acknowledge(message_id: int, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> ReceiptsChanged:
    changed = service.mark_receipts(session=session, clock=clock, actor=actor, message_ids=[message_id],
                                    state="acknowledged")
    return ReceiptsChanged(changed=changed)


@router.get("/messages/{message_id}/receipts", response_model=list[ReceiptOut])
def receipts(message_id: int, session: DbSession, actor: Actor = signed_in()) -> list[ReceiptOut]:
    return [ReceiptOut.model_validate(r) for r in service.receipts_of(session=session, actor=actor,
                                                                      message_id=message_id)]


@router.post("/forward", response_model=list[MessageOut], status_code=status.HTTP_201_CREATED)
def forward(body: ForwardIn, session: DbSession, clock: ClockDep, actor: Actor = signed_in()) -> list[MessageOut]:
    if bool(body.message_ids) == (body.conversation_id is not None):
        raise Invalid("give either message_ids or conversation_id", field="message_ids")
    views = service.forward(session=session, clock=clock, actor=actor, to_conversation_id=body.to_conversation_id,
                            message_ids=body.message_ids, conversation_id=body.conversation_id)
    return [message_out(v) for v in views]


@router.get("/messages/search", response_model=list[MessageOut])
def search(session: DbSession, clock: ClockDep, q: Annotated[str, Query(min_length=1, max_length=200)],
           actor: Actor = signed_in()) -> list[MessageOut]:
    return [message_out(v) for v in service.search_messages(session=session, clock=clock, actor=actor, query=q)]


@router.get("/compliance/messages", response_model=list[MessageOut])
def discover(
    session: DbSession, clock: ClockDep,
    text: Annotated[str | None, Query(max_length=200)] = None,
    patient_id: Annotated[int | None, Query()] = None, person_id: Annotated[int | None, Query()] = None,
    since: Annotated[datetime | None, Query()] = None, until: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200, actor: Actor = allow(*COMPLIANCE),
) -> list[MessageOut]:
    query = compliance.Discovery(text=text, patient_id=patient_id, person_id=person_id, since=since, until=until)
    return [message_out(v) for v in compliance.discover(session=session, clock=clock, actor=actor, query=query,
                                                        limit=limit)]


@router.get("/compliance/holds", response_model=list[HoldOut])
def list_holds(session: DbSession, actor: Actor = allow(*COMPLIANCE)) -> list[HoldOut]:
    return [HoldOut.model_validate(h) for h in compliance.list_holds(session=session)]


@router.post("/compliance/holds", response_model=HoldOut, status_code=status.HTTP_201_CREATED)
def place_hold(body: HoldIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*COMPLIANCE)) -> HoldOut:
    return HoldOut.model_validate(compliance.place_hold(session=session, clock=clock, actor=actor,
                                                        conversation_id=body.conversation_id, reason=body.reason))


@router.post("/compliance/holds/{hold_id}/release", response_model=HoldOut)
def release_hold(hold_id: int, session: DbSession, clock: ClockDep, actor: Actor = allow(*COMPLIANCE)) -> HoldOut:
    return HoldOut.model_validate(compliance.release_hold(session=session, clock=clock, actor=actor, hold_id=hold_id))


@router.post("/compliance/exports", response_class=Response,
             responses={200: {"content": {"application/zip": {}}, "description": "the case as a zip"}})
def export_case(body: ExportIn, request: Request, session: DbSession, clock: ClockDep,
                actor: Actor = allow(*COMPLIANCE)) -> Response:
    data = compliance.export_case(session=session, clock=clock, actor=actor, keys=key_ring(request),
                                  conversation_ids=body.conversation_ids, reason=body.reason)
    name = f"carerelay-case-{clock.now():%Y%m%dT%H%M%SZ}.zip"
    return Response(data, media_type="application/zip",
                    headers={**PATIENT_DATA_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/compliance/purge", response_model=PurgeOut)
def purge(session: DbSession, clock: ClockDep, actor: Actor = allow(*COMPLIANCE)) -> PurgeOut:
    report = compliance.purge_expired(session=session, clock=clock, actor=actor)
    return PurgeOut(cutoff=report.cutoff, messages=report.messages, kept_on_hold=report.kept_on_hold)
