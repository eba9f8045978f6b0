"""Sockets that connect together check their sessions at different moments of the window."""

from __future__ import annotations

from collections import Counter

from carerelay.realtime.api import SESSION_CHECK_SECONDS, _check_phase


def test_consecutive_sessions_spread_over_the_whole_window() -> None:
    """A node restart reconnects every client at once, with sessions opened one after another: their
    first checks must not all come due together (nor any window run longer than the setting)."""
    phases = [_check_phase(session_id) for session_id in range(1000, 1200)]
    assert all(0 <= p < SESSION_CHECK_SECONDS for p in phases)
    tenths = Counter(int(10 * p / SESSION_CHECK_SECONDS) for p in phases)
    assert sorted(tenths) == list(range(10))
    assert max(tenths.values()) <= 25  # 20 a tenth if even: no tenth holds more than a quarter more

