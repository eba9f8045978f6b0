"""Decoding and parsing HL7 v2 with python-hl7, tolerant of what real feeds send.

- Charset: the feed's charset, overridden by MSH-18 when it names one we know; never strict ASCII.
  Bytes that are not valid in the declared charset are decoded as Latin-1 (which cannot fail) and
  the fallback is reported, so the message is kept rather than refused.
- Segment ends: CR, LF or CRLF (normalised to CR before python-hl7 sees them).
- Encoding characters: whatever MSH-1/MSH-2 declare (python-hl7 reads them from the message).
- Escape sequences are undone on every value read through :class:`Seg` (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\X..\\).
- Missing optional fields, components and repetitions read as "".
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any

import hl7
from hl7.util import unescape

# MSH-18 names (HL7 table 0211) to Python codecs.
CHARSETS = {
    "ASCII": "utf-8",  # a superset: "ASCII" feeds that slip in UTF-8 are not refused
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/5": "iso8859-5",
    "8859/7": "iso8859-7",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "ISO-8859-1": "latin-1",
    "ISO8859-1": "latin-1",
    "LATIN1": "latin-1",
    "LATIN-1": "latin-1",
    "CP1252": "cp1252",
    "WINDOWS-1252": "cp1252",
}


class HL7Error(Exception):
    """Content that cannot be read. ``segment``/``field`` name where, for the ERR segment."""

    def __init__(self, text: str, *, segment: str = "MSH", seq: int = 1, field: int | None = None,
                 code: str = "102", reject: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.segment = segment
        self.seq = seq
        self.field = field
        self.code = code  # HL7 table 0357: 100 seg seq, 101 required missing, 102 data type, 200 unsupported type…
        self.reject = reject  # AR (cannot be accepted) rather than AE (content wrong)


def python_codec(name: str) -> str:
    """A Python codec name from a Python or HL7 (table 0211, e.g. ``8859/1``) charset name."""
    try:
        return codecs.lookup(CHARSETS.get(name.strip().upper(), name)).name
    except LookupError:
        raise ValueError(f"unknown charset {name!r}") from None


def _msh_fields(raw: bytes) -> list[bytes]:
    start = raw.find(b"MSH")
    if start < 0 or len(raw) < start + 8:
        return []
    sep = raw[start + 3:start + 4]
    end = len(raw)
    for stop in (b"\r", b"\n"):
        i = raw.find(stop, start)
        if 0 <= i < end:
            end = i
    return raw[start:end].split(sep)


def charset_of(raw: bytes, default: str) -> str:
    """The codec for these bytes: MSH-18 if it names a known charset, else the feed's."""
    fields = _msh_fields(raw)
    if len(fields) > 17:
        declared = fields[17].split(b"~")[0].decode("latin-1").strip().upper()
        if declared in CHARSETS:
            return CHARSETS[declared]
    return default


def decode(raw: bytes, default: str) -> tuple[str, str, bool]:
    """Text, codec used, and whether we fell back to Latin-1 because the bytes did not fit."""
    codec = charset_of(raw, default)
    try:
        return raw.decode(codec), codec, False
    except (UnicodeDecodeError, LookupError):
        return raw.decode("latin-1"), "latin-1", True


def normalise(text: str) -> str:
    text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\x00\r\n\t \x0b\x1c")
    # collapse empty segments (blank lines) that some engines emit
    while "\r\r" in text:
        text = text.replace("\r\r", "\r")
    return text


class Seg:
    """One segment with forgiving, unescaping accessors; indexes are HL7's (PID-3 is ``get(3)``)."""

    def __init__(self, message: Any, segment: Any, seq: int) -> None:
        self._msg = message
        self._seg = segment
        self.seq = seq

    @property
    def name(self) -> str:
        return str(self._seg[0])

    def _field(self, n: int) -> Any:
        if n >= len(self._seg):
            return ""
        return self._seg[n]

    def repetitions(self, n: int) -> int:
        node = self._field(n)
        if isinstance(node, str):
            return 1 if node else 0
        return len(node)

    def get(self, field: int, comp: int = 1, sub: int = 1, rep: int = 1) -> str:
        node: Any = self._field(field)
        if self.name == "MSH" and field in (1, 2):
            return str(node)
        for index in (rep, comp, sub):
            if isinstance(node, str):
                if index != 1:
                    return ""
                continue
            if index > len(node):
                return ""
            node = node[index - 1]
        while not isinstance(node, str):  # deeper than asked: first leaf (python-hl7 rule)
            node = node[0] if len(node) else ""
        return str(unescape(self._msg, node)).strip() if node else ""

    def raw(self, field: int) -> str:
        return str(self._field(field))


@dataclass
class Parsed:
    text: str
    codec: str
    fallback: bool
    message: Any
    segments: list[Seg]

    def first(self, name: str) -> Seg | None:
        for seg in self.segments:
            if seg.name == name:
                return seg
        return None

    def all(self, name: str) -> list[Seg]:
        return [s for s in self.segments if s.name == name]

    @property
    def msh(self) -> Seg:
        return self.segments[0]

    @property
    def message_type(self) -> str:
        code, trigger = self.msh.get(9, 1), self.msh.get(9, 2)
        return f"{code}^{trigger}" if trigger else code

    @property
    def control_id(self) -> str:
        return self.msh.get(10)

    @property
    def version(self) -> str:
        return self.msh.get(12)


HEADER_SEGMENTS = frozenset({"MSH", "EVN", "PID", "MRG"})


def parse(raw: bytes, default_charset: str = "utf-8", *, only: frozenset[str] | None = None) -> Parsed:
    """Parse one message; raises HL7Error (reject=True when it is not HL7 at all).

    ``only``: parse just these segments (the listener checks MSH/PID before the ACK and leaves the
    full parse — OBX with a base64 PDF included — to the processor, off the ACK path).
    """
    text, codec, fallback = decode(raw, default_charset)
    text = normalise(text)
    if only is not None and text.startswith("MSH"):
        text = "\r".join(seg for seg in text.split("\r") if seg[:3] in only)
    if not text.startswith("MSH") or len(text) < 9:
        raise HL7Error("not an HL7 v2 message: it does not start with MSH", field=None, code="100", reject=True)
    sep = text[3]
    if sep.isalnum() or sep in "\r ":
        raise HL7Error("MSH-1 field separator is invalid", field=1, code="102", reject=True)
    try:
        message = hl7.parse(text)
    except Exception as exc:  # python-hl7 raises several kinds on broken input
        raise HL7Error(f"cannot parse: {exc}", reject=True) from exc
    counts: dict[str, int] = {}
    segments: list[Seg] = []
    for segment in message:
        name = str(segment[0]) if len(segment) else ""
        counts[name] = counts.get(name, 0) + 1
        segments.append(Seg(message, segment, counts[name]))
    return Parsed(text=text, codec=codec, fallback=fallback, message=message, segments=segments)


@dataclass(frozen=True)
class Header:
    """What the store and the ACK need from MSH, read without trusting the rest of the message."""

    sending_app: str
    sending_facility: str
    receiving_app: str
    receiving_facility: str
    message_type: str
    control_id: str
    processing_id: str
    version: str
    charset_field: str
    encoding_chars: str
    field_sep: str


def header_of(parsed: Parsed) -> Header:
    msh = parsed.msh
    return Header(
        sending_app=msh.get(3), sending_facility=msh.get(4), receiving_app=msh.get(5),
        receiving_facility=msh.get(6), message_type=parsed.message_type, control_id=parsed.control_id,
        processing_id=msh.get(11) or "P", version=parsed.version or "2.5.1",
        charset_field=msh.get(18), encoding_chars=msh.raw(2) or "^~\\&", field_sep=msh.raw(1) or "|",
    )
