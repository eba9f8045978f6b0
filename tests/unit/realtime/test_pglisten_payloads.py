"""A notification in a shape this version does not know wakes everyone instead of killing the listener."""

from __future__ import annotations

from carerelay.realtime.pglisten import _person_ids


def test_payloads() -> None:
    assert _person_ids("3,5,8") == [3, 5, 8]
    assert _person_ids("") == []
    assert _person_ids("52:1,53:4") is None
