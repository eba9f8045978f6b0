"""Decoding and parsing HL7 v2 the way python-hl7 does, tolerant of what real feeds send.

- Charset: the feed's charset, overridden by MSH-18 when it names one we know; never strict ASCII.
  Bytes that are not valid in the declared charset are decoded as Latin-1 (which cannot fail) and
  the fallback is reported, so the message is kept rather than refused.
- Segment ends: CR, LF or CRLF (normalised to CR before python-hl7 sees them).
- Encoding characters: whatever MSH-1/MSH-2 declare, read and split the way python-hl7 splits them
  (values are split when read, not up front); delimiters that are not all different are refused.
- Escape sequences are undone on every value read through :class:`Seg` (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\X..\\).
- Missing optional fields, components and repetitions read as "".
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Delimiters:
    """MSH-1 and MSH-2, as python-hl7 reads them (defaults for what MSH-2 leaves out)."""

    field: str
    repetition: str
    component: str
    subcomponent: str
    esc: str

    @property
    def separators(self) -> str:
        """In python-hl7's order (segment, field, repetition, component, subcomponent): what
        ``hl7.util.unescape`` reads, with ``esc``."""
        return "\r" + self.field + self.repetition + self.component + self.subcomponent


def delimiters_of(text: str) -> Delimiters:
    """The delimiters of a message that starts with MSH (python-hl7's ``create_parse_plan``)."""
    seps = text[3:text.find(text[3], 4)]
    return Delimiters(field=seps[0], repetition=seps[2] if len(seps) > 2 else "~",
                      component=seps[1] if len(seps) > 1 else "^",
                      subcomponent=seps[4] if len(seps) > 4 else "&", esc=seps[3] if len(seps) > 3 else "\\")


_HEADERS = ("MSH", "BHS", "FHS")  # segments whose first two fields are the delimiters themselves


class Seg:
    """One segment with forgiving, unescaping accessors; indexes are HL7's (PID-3 is ``get(3)``).

    Values are split out of the segment's text when read (most fields of a message are never read),
    exactly as python-hl7 would have split them: a field into repetitions, components, subcomponents.
    """

    __slots__ = ("_atomic", "_delims", "_fields", "_text", "name", "seq")

    def __init__(self, text: str, delims: Delimiters, seq: int) -> None:
        self._text = text
        self._delims = delims
        self._fields: list[str] | None = None
        d = delims
        split = any(c in text for c in (d.field, d.repetition, d.component, d.subcomponent))
        header = split and text[:3] in _HEADERS
        # MSH-1 (the field separator) and MSH-2 (the encoding characters) are not split any further.
        self._atomic = 3 if header else 0
        self.name = text[:3] if header else (text.split(d.field, 1)[0] if split else text)
        if not split:
            self._fields = [text]
        self.seq = seq

    def _all(self) -> list[str]:
        fields = self._fields
        if fields is None:
            text = self._text
            if self._atomic:
                end = text.find(text[3], 4)
                rest = text[end + 1:]
                fields = [text[:3], text[3], text[4:end], *(rest.split(self._delims.field) if rest else ())]
            else:
                fields = text.split(self._delims.field)
            self._fields = fields
        return fields

    def repetitions(self, n: int) -> int:
        fields = self._all()
        if n >= len(fields):
            return 0
        if n < self._atomic:
            return 1
        return fields[n].count(self._delims.repetition) + 1

    def get(self, field: int, comp: int = 1, sub: int = 1, rep: int = 1) -> str:
        fields = self._all()
        if field >= len(fields):
            return ""
        node = fields[field]
        if field < self._atomic:
            if self.name == "MSH" and field in (1, 2):
                return node
            if rep != 1 or comp != 1 or sub != 1:
                return ""
        else:
            d = self._delims
            for index, separator in ((rep, d.repetition), (comp, d.component), (sub, d.subcomponent)):
                if index == 1:
                    cut = node.find(separator)
                    if cut >= 0:
                        node = node[:cut]
                    continue
                parts = node.split(separator)
                if index > len(parts):
                    return ""
                node = parts[index - 1]
        if not node:
            return ""
        if self._delims.esc in node:
            node = str(unescape(self._delims, node))
        return node.strip()

    def raw(self, field: int) -> str:
        fields = self._all()
        return fields[field] if field < len(fields) else ""


@dataclass
class Parsed:
    text: str
    codec: str
    fallback: bool
    delimiters: Delimiters
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


def parse(raw: bytes, default_charset: str = "utf-8") -> Parsed:
    """Parse one message; raises HL7Error (reject=True when it is not HL7 at all).

    Only the segments are split here; a field is split when it is read, so checking MSH and PID
    before the ACK costs little even for an ORU carrying a PDF.
    """
    text, codec, fallback = decode(raw, default_charset)
    text = normalise(text)
    if not text.startswith("MSH") or len(text) < 9:
        raise HL7Error("not an HL7 v2 message: it does not start with MSH", field=None, code="100", reject=True)
    sep = text[3]
    if sep.isalnum() or sep in "\r ":
        raise HL7Error("MSH-1 field separator is invalid", field=1, code="102", reject=True)
    body = text.strip()
    delims = delimiters_of(body)
    if len(set(delims.separators)) != 5:
        raise HL7Error("cannot parse: the delimiters in MSH-1 and MSH-2 are not all different", field=2,
                       reject=True)
    counts: dict[str, int] = {}
    segments: list[Seg] = []
    for line in body.split("\r"):
        seg = Seg(line, delims, 0)
        seg.seq = counts[seg.name] = counts.get(seg.name, 0) + 1
        segments.append(seg)
    return Parsed(text=text, codec=codec, fallback=fallback, delimiters=delims, segments=segments)


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
