"""The WebSocket: one per signed-in session, pushing the person's events in order.

Protocol (JSON text frames):
  server → client  {"type": "hello", "last_seq": N}
                   {"type": "event", "seq": N, "kind": "message.new" | "receipt.changed" | …, "data": {…}}
                   {"type": "session_ended", "detail": "…"}   then close code 4001
                   {"type": "error", "detail": "…"}
  client → server  {"type": "receipt", "state": "delivered" | "read" | "acknowledged", "message_ids": [...]}
                   {"type": "alert_receipt", "state": "delivered" | "read", "alert_ids": [...]}
                   {"type": "ping"}

Connect with ``?after=<last seq seen>`` to receive everything missed since: the events come from the
database, so a reconnect has no gap and no duplicate. Without ``after`` only new events are sent.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.websockets import WebSocketState

from carerelay.alerts import service as alerts
from carerelay.alerts.schemas import AlertReceiptsIn
from carerelay.auth import service as auth
from carerelay.auth.deps import get_clock, get_db, get_settings_dep, presented_token, ws_signed_in
from carerelay.core.actor import Actor
from carerelay.core.db import Database
from carerelay.core.errors import CarerelayError
from carerelay.messaging import service as messaging
from carerelay.messaging.schemas import ReceiptsIn
from carerelay.realtime import service
from carerelay.realtime.hub import Hub

router = APIRouter(tags=["realtime"])

BATCH = 200
HEARTBEAT_SECONDS = 25.0
SESSION_CHECK_SECONDS = 5.0
SESSION_ENDED = 4001


def _fetch(db: Database, person_id: int, after: int) -> list[dict[str, Any]]:
    with db.read_only() as session:
        return [{"type": "event", "seq": e.seq, "kind": e.kind, "data": e.payload}
                for e in service.events_after(session=session, person_id=person_id, after_seq=after, limit=BATCH)]


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
    token = presented_token(websocket) or ""
    await websocket.accept()
    subscription = hub.subscribe(person_id)
    receiver = asyncio.create_task(_receive(websocket, db, actor))
    try:
        cursor = after if after is not None else await to_thread.run_sync(_last_seq, db, person_id)
        await websocket.send_json({"type": "hello", "last_seq": cursor})
        checked = clock.now()
        while not receiver.done():
            batch = await to_thread.run_sync(_fetch, db, person_id, cursor)
            ended: str | None = None
            for frame in batch:
                if frame["kind"] == "session.ended" and actor.session_id in frame["data"]["session_ids"]:
                    ended = f"this session ended: {frame['data']['reason']}"
                    break
                await websocket.send_json(frame)
                cursor = frame["seq"]
            if ended is None and (clock.now() - checked).total_seconds() > SESSION_CHECK_SECONDS:
                checked = clock.now()
                ended = await to_thread.run_sync(_session_problem, websocket, token)
            if ended:
                await websocket.send_json({"type": "session_ended", "detail": ended})
                await websocket.close(SESSION_ENDED, ended[:120])
                return
            if len(batch) == BATCH:
                continue
            waiter = asyncio.create_task(subscription.wait(HEARTBEAT_SECONDS))
            await asyncio.wait({waiter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
    except WebSocketDisconnect:
        pass
    finally:
        hub.unsubscribe(subscription)
        receiver.cancel()
        with suppress(asyncio.CancelledError, WebSocketDisconnect):
            await receiver


def _session_problem(websocket: WebSocket, token: str) -> str | None:
    """A password reset or sign-out elsewhere ends this socket too: alerts go to live sessions only."""
    try:
        with get_db(websocket).unit_of_work() as session:
            auth.authenticate(session=session, clock=get_clock(websocket), settings=get_settings_dep(websocket),
                              token=token)
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

            def mark(receipts: ReceiptsIn = body) -> None:
                with db.unit_of_work() as session:
                    messaging.mark_receipts(session=session, clock=clock, actor=actor,
                                            message_ids=receipts.message_ids, state=receipts.state)

            try:
                await to_thread.run_sync(mark)
            except CarerelayError as exc:
                await websocket.send_json({"type": "error", "detail": exc.message})
        elif kind == "alert_receipt":
            await _alert_receipt(websocket, db, actor, frame)
        else:
            await websocket.send_json({"type": "error", "detail": "unknown frame type; expected receipt, "
                                                                  "alert_receipt or ping"})


async def _alert_receipt(websocket: WebSocket, db: Database, actor: Actor, frame: dict[str, Any]) -> None:
    """The device shows (delivered) or the person opens (read) an alert: what time-to-deliver measures."""
    clock = get_clock(websocket)
    try:
        body = AlertReceiptsIn.model_validate({k: v for k, v in frame.items() if k != "type"})
    except ValidationError as exc:
        await websocket.send_json({"type": "error", "detail": str(exc.errors()[0]["msg"])})
        return

    def mark() -> None:
        with db.unit_of_work() as session:
            alerts.mark_alerts(session=session, clock=clock, actor=actor, alert_ids=body.alert_ids, state=body.state)

    try:
        await to_thread.run_sync(mark)
    except CarerelayError as exc:
        await websocket.send_json({"type": "error", "detail": exc.message})
