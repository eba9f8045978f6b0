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
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import URL

from carerelay.realtime.hub import Hub
from carerelay.realtime.service import NOTIFY_CHANNEL

log = logging.getLogger("carerelay.realtime")

# Every node hears its own commits' NOTIFY too, often before the after-commit hook has handed the same
# events to its sockets; woken then, a socket would read from the database what it is about to be
# given (a third of all frames at 100 sends/s). Held this long, the wake finds those sockets served;
# another node's events reach a socket this much later.
NOTIFY_HOLD_SECONDS = 0.005


def conninfo(url: URL) -> str:
    """libpq's connection string for the engine's URL, query parameters (options=…) included.

    Not the URL rendered as text: SQLAlchemy writes a space in a query value as ``+``, which libpq
    keeps as a plus, so ``options=-csearch_path=x -c…`` would name a schema that does not exist and
    the listener would LISTEN on another channel than the one its nodes NOTIFY."""
    params: dict[str, str] = {k: str(v) for k, v in url.translate_connect_args(username="user",
                                                                                database="dbname").items()}
    params.update({k: v for k, v in url.query.items() if isinstance(v, str)})
    return make_conninfo(**params)


async def listen_forever(conninfo: str, hub: Hub, ready: asyncio.Event | None = None) -> None:
    delay = 0.5
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                schema = (await (await conn.execute("SELECT current_schema()")).fetchone() or ("public",))[0]
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(f"{NOTIFY_CHANNEL}_{schema}")))
                delay = 0.5
                hub.wake_all()
                if ready is not None:
                    ready.set()
                gen = conn.notifies()
                loop = asyncio.get_running_loop()
                try:
                    async for note in gen:
                        loop.call_later(NOTIFY_HOLD_SECONDS, hub.wake_behind, _newest(note.payload))
                finally:
                    await gen.aclose()
        except asyncio.CancelledError:
            raise
        except (psycopg.Error, OSError) as exc:
            log.warning("event listener lost its connection; retrying", extra={"error": str(exc)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)


def _newest(payload: str) -> list[tuple[int, int]]:
    """``person:seq,…``; a bare person id (an older node) wakes that person's connections regardless.
    Anything else is skipped, never fatal: a stray NOTIFY may cost a wake, never the listener."""
    newest = []
    for item in payload.split(","):
        person, _, seq = item.partition(":")
        if person.isdigit():
            newest.append((int(person), int(seq) if seq.isdigit() else 1 << 62))
    return newest


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
