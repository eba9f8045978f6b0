"""Which wakes reach a socket: a NOTIFY (or the sweep) for an event the socket already has, or has
been handed over by this node's commit, must not wake it to read the database for it."""

from __future__ import annotations

import asyncio

from carerelay.realtime.hub import Hub


def _woken(hub: Hub, newest: list[tuple[int, int]]) -> list[bool]:
    async def run() -> list[bool]:
        subs = [hub.subscribe(7), hub.subscribe(8)]
        subs[0].cursor, subs[1].cursor = 3, 3
        hub.deliver([(7, 4, "message.new", {"text": "handed over"})])
        for sub in subs:
            sub._event.clear()  # only the wake below counts
        hub.wake_behind(newest)
        return [sub._event.is_set() for sub in subs]

    return asyncio.run(run())


def test_an_event_already_handed_over_wakes_nobody() -> None:
    assert _woken(Hub(), [(7, 4)]) == [False, False]


def test_an_event_the_socket_lacks_wakes_it() -> None:
    assert _woken(Hub(), [(7, 5), (8, 4)]) == [True, True]


def test_an_event_the_socket_has_sent_wakes_nobody() -> None:
    assert _woken(Hub(), [(7, 3), (8, 2)]) == [False, False]
