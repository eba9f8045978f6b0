"""Discovery, legal holds, retention and case export, for compliance officers.

A case export is a zip that stands on its own: the messages as JSON lines, their attachments as
files, the audit entries about those conversations, and a manifest of SHA-256 sums. Each message's
send entry in the hash-chained audit log records the SHA-256 of the message's content, so a reader
can check both that the messages match what was sent and that the audit entries are the chain's.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.audit.models import AuditEntry
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.crypto import KeyRing
from carerelay.core.errors import Invalid, NotFound
from carerelay.messaging import service
from carerelay.messaging.attachments import ALLOWED, blob_of, open_blob
from carerelay.messaging.models import (
    Attachment,
    AttachmentBlob,
    Conversation,
    ConversationMember,
    IdempotencyKey,
    LegalHold,
    Message,
    RetentionState,
)


@dataclass(frozen=True)
class Discovery:
    text: str | None = None
    patient_id: int | None = None
    person_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


def discover(*, session: Session, clock: Clock, actor: Actor, query: Discovery, limit: int = 200) -> list[
        service.MessageView]:
    """Everything retained, whatever its age; the search itself is audited."""
    stmt = select(Message)
    if query.text:
        stmt = stmt.where(service.text_matches(session, query.text, since=query.since))
    if query.patient_id is not None:
        stmt = stmt.where(Message.patient_id == query.patient_id)
    if query.person_id is not None:
        stmt = stmt.where(exists().where(ConversationMember.conversation_id == Message.conversation_id,
                                         ConversationMember.person_id == query.person_id))
    if query.since is not None:
        stmt = stmt.where(Message.created_at >= query.since)
    if query.until is not None:
        stmt = stmt.where(Message.created_at < query.until)
    rows = list(session.execute(stmt.order_by(Message.conversation_id, Message.seq).limit(limit)).scalars())
    audit.record(session=session, clock=clock, actor=actor, action="compliance.discover", object_type="messages",
                 detail={"query": {k: v for k, v in query.__dict__.items() if v is not None}, "results": len(rows)})
    return service.views(session, rows)


def place_hold(*, session: Session, clock: Clock, actor: Actor, conversation_id: int, reason: str) -> LegalHold:
    if session.get(Conversation, conversation_id) is None:
        raise NotFound(f"no conversation {conversation_id}")
    hold = LegalHold(conversation_id=conversation_id, reason=reason, placed_by=actor.person_id,
                     placed_at=clock.now())
    session.add(hold)
    session.flush()
    audit.record(session=session, clock=clock, actor=actor, action="compliance.place_hold",
                 object_type="conversation", object_id=conversation_id, detail={"hold_id": hold.id, "reason": reason})
    return hold


def release_hold(*, session: Session, clock: Clock, actor: Actor, hold_id: int) -> LegalHold:
    hold = session.get(LegalHold, hold_id)
    if hold is None:
        raise NotFound(f"no legal hold {hold_id}")
    if hold.released_at is None:
        hold.released_at = clock.now()
    audit.record(session=session, clock=clock, actor=actor, action="compliance.release_hold",
                 object_type="conversation", object_id=hold.conversation_id, detail={"hold_id": hold_id})
    return hold


def list_holds(*, session: Session, active_only: bool = True) -> list[LegalHold]:
    query = select(LegalHold).order_by(LegalHold.id)
    if active_only:
        query = query.where(LegalHold.released_at.is_(None))
    return list(session.execute(query).scalars())


@dataclass(frozen=True)
class PurgeReport:
    cutoff: datetime
    messages: int
    kept_on_hold: int


def purge_expired(*, session: Session, clock: Clock, actor: Actor) -> PurgeReport:
    """Delete what is past retention and on no legal hold; the delete trigger checks both again."""
    years = service.get_policy(session=session).retention_years
    cutoff = clock.now() - timedelta(days=round(365.25 * years))
    state = session.get(RetentionState, 1)
    if state is None:
        state = RetentionState(id=1, purge_before=cutoff)
        session.add(state)
    else:
        state.purge_before = cutoff
    session.flush()
    held = select(LegalHold.conversation_id).where(LegalHold.released_at.is_(None))
    expired = select(Message.id).where(Message.created_at < cutoff)
    kept = len(session.execute(expired.where(Message.conversation_id.in_(held))).all())
    doomed = list(session.execute(expired.where(Message.conversation_id.not_in(held))).scalars())
    if doomed:
        session.execute(delete(Attachment).where(Attachment.message_id.in_(doomed)))
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.message_id.in_(doomed)))
        session.execute(delete(Message).where(Message.id.in_(doomed)))
        session.execute(delete(AttachmentBlob).where(
            ~exists().where(Attachment.blob_id == AttachmentBlob.id)))
    audit.record(session=session, clock=clock, actor=actor, action="compliance.purge", object_type="messages",
                 detail={"cutoff": cutoff.isoformat(), "deleted": len(doomed), "kept_on_hold": kept})
    return PurgeReport(cutoff, len(doomed), kept)


def export_case(
    *, session: Session, clock: Clock, actor: Actor, keys: KeyRing, conversation_ids: Sequence[int], reason: str
) -> bytes:
    if not conversation_ids:
        raise Invalid("name at least one conversation", field="conversation_ids")
    found = set(session.execute(select(Conversation.id).where(Conversation.id.in_(conversation_ids))).scalars())
    missing = sorted(set(conversation_ids) - found)
    if missing:
        raise NotFound(f"no conversation {', '.join(map(str, missing))}")
    messages = list(session.execute(select(Message).where(Message.conversation_id.in_(found))
                                    .order_by(Message.conversation_id, Message.seq)).scalars())
    views = service.views(session, messages)
    files: dict[str, bytes] = {}
    lines = []
    for view in views:
        line = view.as_json() | {"content_sha256": service.content_hash(view)}
        lines.append(json.dumps(line, sort_keys=True, ensure_ascii=False))
        for att in view.attachments:
            attachment = session.get_one(Attachment, att.id)
            blob = blob_of(session, attachment)
            data = open_blob(keys=keys, blob=blob)
            files[f"attachments/{att.id}.{ALLOWED.get(blob.content_type, 'bin')}"] = data
    files["messages.jsonl"] = ("\n".join(lines) + "\n").encode()
    conv_refs = [str(c) for c in sorted(found)]
    entries = session.execute(
        select(AuditEntry).where(or_(AuditEntry.object_type == "conversation", AuditEntry.object_type == "message"),
                                 AuditEntry.object_id.in_(conv_refs + [str(m.id) for m in messages]))
        .order_by(AuditEntry.seq)).scalars().all()
    files["audit.jsonl"] = ("\n".join(json.dumps(_entry_json(e), sort_keys=True, ensure_ascii=False)
                                      for e in entries) + "\n").encode()
    chain = audit.verify_chain(session=session)
    manifest: dict[str, Any] = {
        "exported_at": clock.now().isoformat(), "exported_by": actor.username, "reason": reason,
        "conversations": sorted(found), "messages": len(views),
        "audit_chain": {"ok": chain.ok, "entries": chain.entries, "problem": chain.problem},
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
        "how_to_verify": "Each message's content_sha256 equals the content_sha256 in the detail of its "
                         "message.send or message.forward entry in audit.jsonl; each audit entry's hash chains "
                         "to the previous one (see carerelay audit verify).",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            archive.writestr(name, data)
        archive.writestr("manifest.json", json.dumps(manifest, indent=2))
    audit.record(session=session, clock=clock, actor=actor, action="compliance.export", object_type="messages",
                 detail={"conversations": sorted(found), "messages": len(views), "reason": reason,
                         "zip_sha256": hashlib.sha256(buffer.getvalue()).hexdigest()})
    return buffer.getvalue()


def _entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {"seq": entry.seq, "at": entry.at.isoformat(), "actor_id": entry.actor_id, "actor_name": entry.actor_name,
            "action": entry.action, "object_type": entry.object_type, "object_id": entry.object_id,
            "outcome": entry.outcome, "ip": entry.ip, "detail": entry.detail, "prev_hash": entry.prev_hash,
            "hash": entry.hash}
