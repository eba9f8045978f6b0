"""The WebSocket: one per signed-in session, pushing the person's events in order.

Protocol (JSON text frames):
  server → client  {"type": "hello", "last_seq": N}
                   {"type": "event", "seq": N, "kind": "message.new" | "receipt.changed" | …, "data": {…}}
                   {"type": "session_ended", "detail": "…"}   then close code 4001: the session ended
                   (signed out, revoked, password reset, the next person signed in on a shared
                   device, idle timeout); no event is sent once its end has committed
                   {"type": "error", "detail": "…"}
  client → server  {"type": "receipt", "state": "delivered" | "read" | "acknowledged", "message_ids": [...]}
                   {"type": "alert.receipt", "state": "delivered" | "read", "alert_ids": [...]}
                   {"type": "alert.respond", "alert_id": N, "choice": "Accept" | "Reject" | "Call back" | …}
                   {"type": "ping"}
  server → client  {"type": "alert.responded", "alert_id": N, "status": "…"} after an alert.respond

Connect with ``?after=<last seq seen>`` to receive everything missed since: the events come from the
database, so a reconnect has no gap and no duplicate. Without ``after`` only new events are sent.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.websockets import WebSocketState

from carerelay.alerts import service as alerts
from carerelay.alerts.schemas import AlertReceiptsIn, AlertRespondIn
from carerelay.auth import devices
from carerelay.auth import service as auth
from carerelay.auth.deps import get_clock, get_db, get_settings_dep, presented_token, ws_signed_in
from carerelay.config import Settings
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.core.errors import CarerelayError
from carerelay.messaging import service as messaging
from carerelay.messaging.schemas import ReceiptsIn
from carerelay.ops.metrics import SOCKET_FRAMES
from carerelay.realtime import service
from carerelay.realtime.hub import Hub

router = APIRouter(tags=["realtime"])

BATCH = 200
SESSION_CHECK_SECONDS = 5.0
SESSION_ENDED = 4001
_HANDED_OVER, _READ = SOCKET_FRAMES.labels("handover"), SOCKET_FRAMES.labels("database")


def _fetch(
    db: Database, clock: Clock, settings: Settings, actor: Actor, after: int, trusted: bool
) -> tuple[list[dict[str, Any]], datetime | None]:
    """The person's events after ``after``, and until when this socket's session may receive them.

    The session is checked after the events are read (unless ``trusted``: still within the ``until``
    of an earlier check): if it is still one of the person's delivery targets then, every event just
    read was written while it was live. Once it is not (handed over to the next person on a shared
    device, idle, signed out, revoked), nothing read is sent.
    """
    assert actor.person_id is not None
    with db.read_only() as session:
        frames = [{"type": "event", "seq": e.seq, "kind": e.kind, "data": e.payload}
                  for e in service.events_after(session=session, person_id=actor.person_id, after_seq=after,
                                                limit=BATCH)]
        return frames, (None if trusted else _target_until(session, clock, settings, actor))


def _live_until(db: Database, clock: Clock, settings: Settings, actor: Actor) -> datetime | None:
    with db.read_only() as session:
        return _target_until(session, clock, settings, actor)


def _target_until(session: Session, clock: Clock, settings: Settings, actor: Actor) -> datetime | None:
    """Until when, at the latest, this socket's session stays a delivery target; None: it is not one.

    Any earlier end is announced in the person's event stream (``session.ended``), which the socket
    reads in order: between checks it trusts its session until then and asks nothing per event.
    """
    assert actor.person_id is not None and actor.session_id is not None
    targets = devices.delivery_targets(session=session, clock=clock, settings=settings, person_id=actor.person_id,
                                       session_id=actor.session_id)
    return targets[0].until if targets else None


def _last_seq(db: Database, person_id: int) -> int:
    with db.read_only() as session:
        return service.last_seq(session=session, person_id=person_id)


@router.websocket("/api/ws")
async def events(websocket: WebSocket, after: int | None = None, actor: Actor = ws_signed_in()) -> None:
    assert actor.person_id is not None
    person_id = actor.person_id
    db = get_db(websocket)
    hub: Hub = websocket.app.state.hub
    clock = get_clock(websocket)
    settings = get_settings_dep(websocket)
    token = presented_token(websocket) or ""
    await websocket.accept()
    subscription = hub.subscribe(person_id, actor.session_id)
    receiver = asyncio.create_task(_receive(websocket, db, actor))
    receiver.add_done_callback(lambda _: subscription.wake())  # the client went away: stop waiting for events
    try:
        cursor = after if after is not None else await db.in_thread(_last_seq, db, person_id)
        subscription.cursor = cursor
        await websocket.send_json({"type": "hello", "last_seq": cursor})
        checked = clock.now() - timedelta(seconds=_check_phase(actor.session_id))
        caught_up = False
        until: datetime | None = None
        while not receiver.done():
            # Events this node just committed come straight from the hub when they continue exactly
            # at the cursor; anything else (catching up, a gap, another node's commit) is read. Either
            # way the session is known to be live after the events are taken and before any is sent:
            # checked again once the last check's ``until`` has passed, and any earlier end is a
            # session.ended event read in order with the rest.
            batch, complete = subscription.take() if caught_up else ([], False)
            handed_over = len(batch)
            trusted = until is not None and clock.now() < until
            if not complete:
                more, found = await db.in_thread(_fetch, db, clock, settings, actor, cursor + len(batch), trusted)
                batch += more
                until = until if trusted else found
            elif not trusted:
                until = await db.in_thread(_live_until, db, clock, settings, actor)
            live = until is not None
            ended: str | None = None
            if not live:
                ended = (_announced_end(batch, actor) or await _session_problem(websocket, token)
                         or "this session has ended")
                batch = []
            for sent, frame in enumerate(batch):
                ended = _announced_end([frame], actor)
                if ended:
                    break
                await websocket.send_json(frame)
                cursor = subscription.cursor = frame["seq"]
                (_HANDED_OVER if sent < handed_over else _READ).inc()
            asked, subscription.check_session = subscription.check_session, False
            if ended is None and (asked or (clock.now() - checked).total_seconds() > SESSION_CHECK_SECONDS):
                checked = clock.now()
                ended = await _session_problem(websocket, token)
            if ended:
                await websocket.send_json({"type": "session_ended", "detail": ended})
                await websocket.close(SESSION_ENDED, ended[:120])
                return
            caught_up = complete or len(batch) < BATCH
            if not caught_up:
                continue
            # no timer of its own: the node's sweep (realtime/presence.py) wakes it when it must look
            await subscription.wait()
    except WebSocketDisconnect:
        pass
    finally:
        hub.unsubscribe(subscription)
        receiver.cancel()
        with suppress(asyncio.CancelledError, WebSocketDisconnect):
            await receiver


def _check_phase(session_id: int | None) -> float:
    """How far into its first check window a socket starts, spread by session id: sockets that connect
    together (every client of a node that restarted, a shift signing in) would otherwise check their
    sessions together every window, a burst of one read per socket that delays the messages queued
    behind it (bench/messaging.py saw 150 ms for a second at 300/s). Consecutive ids land apart (the
    golden ratio's fraction); a window is never longer than SESSION_CHECK_SECONDS."""
    return ((session_id or 0) * 0.6180339887 % 1.0) * SESSION_CHECK_SECONDS


def _announced_end(frames: list[dict[str, Any]], actor: Actor) -> str | None:
    for frame in frames:
        if frame["kind"] == "session.ended" and actor.session_id in frame["data"]["session_ids"]:
            return f"this session ended: {frame['data']['reason']}"
    return None


async def _session_problem(websocket: WebSocket, token: str) -> str | None:
    """A password reset or sign-out elsewhere ends this socket too: alerts go to live sessions only.

    An open socket is presence, not use: it keeps a personal session alive but lets a shared device's
    session idle out (and records that end, announced like any other). Checked when the node's sweep
    asks (realtime/presence.py, which also does the presence slide for every socket at once) and at
    most every few seconds while events arrive; in a read-only snapshot first: only when the check has
    something to write (an expiry to record) does it take a write turn.
    """
    db = get_db(websocket)

    def check(session: Session) -> None:
        auth.authenticate(session=session, clock=get_clock(websocket), settings=get_settings_dep(websocket),
                          token=token, activity=False)

    def peek() -> bool:
        with db.read_only() as session:
            if auth.session_is_settled(session=session, clock=get_clock(websocket), token=token):
                return False  # nothing to check or write: no need to load the session and its person
            try:
                check(session)
            except CarerelayError:
                return True
            return bool(session.dirty)

    try:
        if await db.in_thread(peek):
            await db.run(check)
    except CarerelayError as exc:
        return exc.message
    return None


async def _receive(websocket: WebSocket, db: Database, actor: Actor) -> None:
    clock = get_clock(websocket)
    while websocket.application_state == WebSocketState.CONNECTED:
        frame = await websocket.receive_json()
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "ping":
            await websocket.send_json({"type": "pong"})
        elif kind == "receipt":
            try:
                body = ReceiptsIn.model_validate({k: v for k, v in frame.items() if k != "type"})
            except ValidationError as exc:
                await websocket.send_json({"type": "error", "detail": str(exc.errors()[0]["msg"])})
                continue

            def mark(session: Session, receipts: ReceiptsIn = body) -> None:
                messaging.mark_receipts(session=session, clock=clock, actor=actor,
                                        message_ids=receipts.message_ids, state=receipts.state)

            try:
                await db.run(mark)
            except CarerelayError as exc:
                await websocket.send_json({"type": "error", "detail": exc.message})
        elif kind in ("alert.receipt", "alert.respond"):
            await _alert_frame(websocket, db, actor, frame)
        else:
            await websocket.send_json({"type": "error", "detail": "unknown frame type; expected receipt, "
                                                                  "alert.receipt, alert.respond or ping"})


async def _alert_frame(websocket: WebSocket, db: Database, actor: Actor, frame: dict[str, Any]) -> None:
    """The clinician's device answers an alert (accept / reject / call back) or says it showed it."""
    clock = get_clock(websocket)
    try:
        if frame["type"] == "alert.receipt":
            body = AlertReceiptsIn.model_validate({k: v for k, v in frame.items() if k != "type"})

            def mark(receipts: AlertReceiptsIn = body) -> None:
                with db.unit_of_work() as session:
                    alerts.record_receipts(session=session, clock=clock, actor=actor, alert_ids=receipts.alert_ids,
                                           state=receipts.state)

            await db.in_thread(mark)
            return
        answer = AlertRespondIn.model_validate({k: v for k, v in frame.items() if k != "type"})

        def respond(given: AlertRespondIn = answer) -> str:
            with db.unit_of_work() as session:
                alert = alerts.respond(session=session, clock=clock, actor=actor, alert_id=given.alert_id,
                                       choice=given.choice)
                return str(alert.status)

        state = await db.in_thread(respond)
        await websocket.send_json({"type": "alert.responded", "alert_id": answer.alert_id, "status": state})
    except ValidationError as exc:
        await websocket.send_json({"type": "error", "detail": str(exc.errors()[0]["msg"])})
    except CarerelayError as exc:
        await websocket.send_json({"type": "error", "detail": exc.message})
