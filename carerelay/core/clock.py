"""Where time comes from.

Shifts, escalations, lock-outs and retention all depend on "now". Every service takes a
``Clock`` instead of calling ``datetime.now()`` so tests move time forward without sleeping.
All instants are timezone-aware UTC; local wall-clock time exists only inside scheduling.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when told to; thread-safe because servers in tests share it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        step = delta if delta is not None else timedelta(**kwargs)
        with self._lock:
            self._now += step
            return self._now

    def set(self, instant: datetime) -> None:
        with self._lock:
            self._now = instant.astimezone(UTC)


class FileClock:
    """Tests only (``CARERELAY_TEST_CLOCK_FILE``): "now" is the ISO 8601 instant written in a file.

    A browser test moves a live ``carerelay serve`` process through a shift change by rewriting the
    file (write elsewhere, then rename over it). The settings refuse this clock unless
    ``CARERELAY_ENVIRONMENT=test``, so a production server can never have its time set from outside.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._now = self._read()

    def _read(self) -> datetime:
        instant = datetime.fromisoformat(self._path.read_text().strip())
        if instant.tzinfo is None:
            raise ValueError(f"{self._path}: the instant needs an offset, e.g. 2026-11-24T13:05:00+00:00")
        return instant.astimezone(UTC)

    def now(self) -> datetime:
        stat = os.stat(self._path)
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if seen != self._seen:
                self._now = self._read()
                self._seen = seen
            return self._now


def as_utc(value: datetime) -> datetime:
    """Database drivers hand back naive datetimes for SQLite; we store UTC, so say so."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
