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


def _person_ids(payload: str) -> list[int] | None:
    """The people a NOTIFY names, or None when it cannot be read.

    The channel is database-wide: another carerelay version (or a test run in another schema) may
    notify in a shape this one does not know. A wake carries no data, so an unreadable one wakes
    every socket on this node to look again, and the listener never dies of it.
    """
    try:
        return [int(p) for p in payload.split(",") if p]
    except ValueError:
        log.warning("unreadable event notification; waking every connection", extra={"payload": payload[:100]})
        return None


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
                        ids = _person_ids(note.payload)
                        if ids is None:
                            hub.wake_all()
                        else:
                            hub.wake(ids)
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
