"""MLLP framing: <VT> message <FS><CR>.

Tolerant on input the way interface engines are in practice: NULs, CR/LF and other whitespace
between frames are skipped, a missing trailing <CR> after <FS> is accepted, and a frame larger than
the limit is reported (and its bytes discarded up to the next frame) instead of growing memory.
"""

from __future__ import annotations

from dataclasses import dataclass

START = b"\x0b"
END = b"\x1c"
CR = b"\x0d"
_BETWEEN = b"\x00\r\n\t \x1a"


def frame(payload: bytes) -> bytes:
    return START + payload + END + CR


@dataclass(frozen=True)
class Frame:
    payload: bytes


@dataclass(frozen=True)
class Oversize:
    """A frame exceeded the limit; ``head`` keeps its first bytes so an AR can name the message."""

    size: int
    head: bytes


@dataclass(frozen=True)
class Garbage:
    """Bytes outside any frame (no <VT>): a client speaking something other than MLLP."""

    data: bytes


Event = Frame | Oversize | Garbage


class FrameReader:
    """Feed bytes in, take complete frames out. Keeps at most ``limit`` bytes of one frame."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._in_frame = False
        self._skipping = 0  # bytes dropped of an oversize frame
        self._head = b""
        self._garbage = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame (a truncated frame at EOF)."""
        return len(self._buf) + self._skipping

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        view = memoryview(data)
        pos = 0
        n = len(data)
        while pos < n:
            if not self._in_frame:
                start = data.find(START, pos)
                chunk = data[pos:] if start < 0 else data[pos:start]
                junk = chunk.strip(_BETWEEN) if chunk else b""
                if junk:
                    self._garbage += junk[:4096]
                if start < 0:
                    break
                if self._garbage:
                    events.append(Garbage(bytes(self._garbage)))
                    self._garbage.clear()
                self._in_frame = True
                pos = start + 1
                continue
            end = data.find(END, pos)
            stop = n if end < 0 else end
            if self._skipping:
                self._skipping += stop - pos
            else:
                self._buf += view[pos:stop]
                if len(self._buf) > self.limit:
                    self._head = bytes(self._buf[:2048])
                    self._skipping = len(self._buf)
                    self._buf.clear()
            if end < 0:
                break
            if self._skipping:
                events.append(Oversize(self._skipping, self._head))
                self._skipping = 0
                self._head = b""
            else:
                events.append(Frame(bytes(self._buf)))
                self._buf.clear()
            self._in_frame = False
            pos = end + 1
            if pos < n and data[pos:pos + 1] == CR:
                pos += 1
        if self._garbage and not self._in_frame and len(self._garbage) >= 4096:
            events.append(Garbage(bytes(self._garbage)))
            self._garbage.clear()
        return events

    def flush_garbage(self) -> Garbage | None:
        if not self._garbage:
            return None
        out = Garbage(bytes(self._garbage))
        self._garbage.clear()
        return out
