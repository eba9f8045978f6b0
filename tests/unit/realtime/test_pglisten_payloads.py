"""A notification in a shape this version does not expect never kills the listener."""

from __future__ import annotations

from carerelay.realtime.pglisten import _newest

EVERYTHING = 1 << 62


def test_person_and_sequence_pairs() -> None:
    assert _newest("3:17,5:2") == [(3, 17), (5, 2)]


def test_a_bare_person_id_wakes_that_person_whatever_it_has() -> None:
    assert _newest("3,5") == [(3, EVERYTHING), (5, EVERYTHING)]


def test_what_cannot_be_read_is_skipped() -> None:
    assert _newest("") == []
    assert _newest("x:1,,7:y,{json}") == [(7, EVERYTHING)]
