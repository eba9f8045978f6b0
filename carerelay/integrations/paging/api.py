"""Paging routes: senders, recipient maps and rules (integration admins), the feed monitor, and the
operator's page to a number."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from carerelay.auth.deps import ClockDep, DbSession, allow
from carerelay.core.actor import Actor
from carerelay.core.errors import Invalid
from carerelay.directory.models import Role
from carerelay.integrations.paging import service
from carerelay.integrations.paging.models import PagingSender
from carerelay.integrations.paging.schemas import (
    MessageDetailOut,
    MessageOut,
    PageIn,
    PageOut,
    RecipientIn,
    RecipientOut,
    RecipientPatch,
    RuleIn,
    RuleOut,
    RulePatch,
    SenderIn,
    SenderOut,
    SenderPatch,
)

router = APIRouter(prefix="/api/paging", tags=["paging"])

ADMINS = (Role.INTEGRATION_ADMIN, Role.SYSTEM_ADMIN)
PAGERS = (Role.OPERATOR, Role.INTEGRATION_ADMIN, Role.SYSTEM_ADMIN)


def _sender_out(sender: PagingSender) -> SenderOut:
    return SenderOut.model_validate({**{c: getattr(sender, c) for c in (
        "sender_id", "label", "channels", "reply_url", "timezone", "active", "created_at", "updated_at")},
        "security_code_required": sender.code_hash is not None})


@router.get("/senders", response_model=list[SenderOut])
def list_senders(session: DbSession, actor: Actor = allow(*ADMINS)) -> list[SenderOut]:
    return [_sender_out(s) for s in service.list_senders(session=session)]


@router.post("/senders", response_model=SenderOut, status_code=status.HTTP_201_CREATED)
def create_sender(body: SenderIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)) -> SenderOut:
    return _sender_out(service.create_sender(session=session, clock=clock, actor=actor, **body.model_dump()))


@router.patch("/senders/{sender_id}", response_model=SenderOut)
def update_sender(sender_id: str, body: SenderPatch, session: DbSession, clock: ClockDep,
                  actor: Actor = allow(*ADMINS)) -> SenderOut:
    changes = body.model_dump(exclude_unset=True)
    return _sender_out(service.update_sender(session=session, clock=clock, actor=actor, sender_id=sender_id,
                                             changes=changes))


@router.get("/recipients", response_model=list[RecipientOut])
def list_recipients(session: DbSession, actor: Actor = allow(*ADMINS)) -> list[RecipientOut]:
    return [RecipientOut.model_validate(r) for r in service.list_recipients(session=session)]


@router.post("/recipients", response_model=RecipientOut, status_code=status.HTTP_201_CREATED)
def create_recipient(body: RecipientIn, session: DbSession, clock: ClockDep,
                     actor: Actor = allow(*ADMINS)) -> RecipientOut:
    return RecipientOut.model_validate(service.create_recipient(session=session, clock=clock, actor=actor,
                                                                **body.model_dump()))


@router.patch("/recipients/{recipient_id}", response_model=RecipientOut)
def update_recipient(recipient_id: str, body: RecipientPatch, session: DbSession, clock: ClockDep,
                     actor: Actor = allow(*ADMINS)) -> RecipientOut:
    return RecipientOut.model_validate(service.update_recipient(session=session, clock=clock, actor=actor,
                                                                recipient_id=recipient_id, **body.model_dump()))


def _rule_values(body: RuleIn | RulePatch, exclude_unset: bool) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=exclude_unset)
    if values.get("priority") is not None:
        values["priority"] = str(values["priority"])
    return values


@router.get("/rules", response_model=list[RuleOut])
def list_rules(session: DbSession, actor: Actor = allow(*ADMINS)) -> list[RuleOut]:
    return [RuleOut.model_validate(r) for r in service.list_rules(session=session)]


@router.post("/rules", response_model=RuleOut, status_code=status.HTTP_201_CREATED)
def create_rule(body: RuleIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*ADMINS)) -> RuleOut:
    values = _rule_values(body, exclude_unset=False)
    name, kind = values.pop("name"), values.pop("alert_kind")
    return RuleOut.model_validate(service.create_rule(session=session, clock=clock, actor=actor, name=name,
                                                      alert_kind=kind, **values))


@router.patch("/rules/{rule_id}", response_model=RuleOut)
def update_rule(rule_id: int, body: RulePatch, session: DbSession, clock: ClockDep,
                actor: Actor = allow(*ADMINS)) -> RuleOut:
    return RuleOut.model_validate(service.update_rule(session=session, clock=clock, actor=actor, rule_id=rule_id,
                                                      changes=_rule_values(body, exclude_unset=True)))


@router.get("/messages", response_model=list[MessageOut])
def search_messages(
    session: DbSession, clock: ClockDep,
    channel: Annotated[str | None, Query(pattern="^(wctp|tap|snpp|email|web)$")] = None,
    message_status: Annotated[str | None, Query(alias="status",
                                                pattern="^(accepted|scheduled|duplicate|refused)$")] = None,
    sender_id: Annotated[str | None, Query(max_length=128)] = None,
    recipient_id: Annotated[str | None, Query(max_length=128)] = None,
    message_id: Annotated[str | None, Query(max_length=32)] = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    actor: Actor = allow(*ADMINS),
) -> list[MessageOut]:
    """The feed monitor: every inbound page and device alert, newest first, refused ones with the reason."""
    query = service.MessageQuery(channel=channel, status=message_status, sender_id=sender_id,
                                 recipient_id=recipient_id, message_id=message_id, since=since, until=until)
    rows = service.search_messages(session=session, clock=clock, actor=actor, query=query, before_id=before_id,
                                   limit=limit)
    return [MessageOut.model_validate(r) for r in rows]


@router.get("/messages/{message_id}", response_model=MessageDetailOut)
def read_message(message_id: int, session: DbSession, clock: ClockDep,
                 actor: Actor = allow(*ADMINS)) -> MessageDetailOut:
    row = service.access_message(session=session, clock=clock, actor=actor, message_id=message_id)
    raw = row.raw.decode("utf-8", errors="replace") if row.raw is not None else None
    return MessageDetailOut.model_validate({**MessageOut.model_validate(row).model_dump(), "raw": raw,
                                            **{c: getattr(row, c) for c in (
                                                "choices", "priority_in", "submitted_at", "deliver_after",
                                                "deliver_before", "notify_queued", "notify_delivered",
                                                "notify_read")}})


@router.post("/page", response_model=PageOut, status_code=status.HTTP_201_CREATED)
def page(body: PageIn, session: DbSession, clock: ClockDep, actor: Actor = allow(*PAGERS)) -> PageOut:
    """Page a virtual pager number (or any recipient id) as an operator; refused numbers are kept too."""
    outcome = service.page_from_operator(session=session, clock=clock, actor=actor, number=body.number,
                                         text=body.text, priority=str(body.priority) if body.priority else None)
    if not outcome.accepted:
        raise Invalid(outcome.text, field="number", keep_changes=True)
    return PageOut(paging_message_id=outcome.message.id, alert_id=outcome.alert.id if outcome.alert else None,
                   status=outcome.message.status, detail=outcome.text)
