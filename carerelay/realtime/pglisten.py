"""Cross-node fan-out on PostgreSQL: LISTEN for the NOTIFY that event-writing transactions send.

On reconnect every local connection is woken once, since notifications sent while the listener
was away are gone; the connections then catch up from the database.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

import psycopg
from psycopg import sql

from carerelay.realtime.hub import Hub
from carerelay.realtime.service import NOTIFY_CHANNEL

log = logging.getLogger("carerelay.realtime")


def _libpq_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def _person_ids(payload: str) -> list[int]:
    """A payload we cannot read wakes no one rather than ending the listener: sockets still catch up
    from the database at their next wake, so a stray NOTIFY can cost latency, never an event."""
    ids: list[int] = []
    for part in payload.split(","):
        try:
            ids.append(int(part))
        except ValueError:
            if part:
                log.warning("ignored an unreadable event notification", extra={"payload": payload[:200]})
    return ids


async def listen_forever(database_url: str, hub: Hub, ready: asyncio.Event | None = None) -> None:
    delay = 0.5
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(_libpq_url(database_url), autocommit=True) as conn:
                schema = (await (await conn.execute("SELECT current_schema()")).fetchone() or ("public",))[0]
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(f"{NOTIFY_CHANNEL}_{schema}")))
                delay = 0.5
                hub.wake_all()
                if ready is not None:
                    ready.set()
                gen = conn.notifies()
                try:
                    async for note in gen:
                        hub.wake(_person_ids(note.payload))
                finally:
                    await gen.aclose()
        except asyncio.CancelledError:
            raise
        except (psycopg.Error, OSError) as exc:
            log.warning("event listener lost its connection; retrying", extra={"error": str(exc)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
