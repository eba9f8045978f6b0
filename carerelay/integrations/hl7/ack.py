"""Building ACKs: MSA-1 AA / AE / AR, MSA-2 the sender's MSH-10, an ERR segment naming where.

The ACK uses the incoming message's encoding characters and version, escapes every value it
copies, and is encoded in the incoming charset. When the input is not HL7 at all, a generic ACK
with the default delimiters is returned so the sender still sees an AR rather than silence.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from carerelay.integrations.hl7.parser import Header

ERROR_TEXT = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "203": "Unsupported version id",
    "206": "Application record locked",
    "207": "Application internal error",
}

DEFAULT_HEADER = Header(
    sending_app="", sending_facility="", receiving_app="CARERELAY", receiving_facility="", message_type="",
    control_id="", processing_id="P", version="2.5.1", charset_field="", encoding_chars="^~\\&", field_sep="|",
)


@dataclass(frozen=True)
class ErrorLocation:
    segment: str
    seq: int = 1
    field: int | None = None
    code: str = "207"


def escape(value: str, field_sep: str, encoding_chars: str) -> str:
    """HL7 escaping of one value (2.10.4): the escape character first, then the delimiters."""
    chars = (encoding_chars + "^~\\&")[:4] if len(encoding_chars) < 4 else encoding_chars
    comp, rep, esc, sub = chars[0], chars[1], chars[2], chars[3]
    out = value.replace(esc, f"{esc}E{esc}")
    for char, code in ((field_sep, "F"), (comp, "S"), (rep, "R"), (sub, "T")):
        out = out.replace(char, f"{esc}{code}{esc}")
    return out.replace("\r", f"{esc}X0D{esc}").replace("\n", f"{esc}X0A{esc}")


def _version_at_least(version: str, wanted: tuple[int, ...]) -> bool:
    parts: list[int] = []
    for p in version.split("."):
        if not p.isdigit():
            break
        parts.append(int(p))
    return tuple(parts) >= wanted


def build_ack(header: Header | None, code: str, *, now: datetime, text: str = "",
              error: ErrorLocation | None = None, control_id: str | None = None) -> str:
    """The ACK message as text with CR segment ends (frame and encode it to send)."""
    if code not in ("AA", "AE", "AR", "CA", "CE", "CR"):
        raise ValueError(f"not an acknowledgment code: {code}")
    h = header or DEFAULT_HEADER
    fs = h.field_sep if len(h.field_sep) == 1 and h.field_sep not in "\r\n" else "|"
    enc = h.encoding_chars if len(h.encoding_chars) >= 4 and fs not in h.encoding_chars else "^~\\&"
    comp = enc[0]

    def e(value: str) -> str:
        return escape(value, fs, enc)

    trigger = h.message_type.split("^")[1] if "^" in h.message_type else ""
    msh = [
        "MSH", enc, e(h.receiving_app or "CARERELAY"), e(h.receiving_facility), e(h.sending_app),
        e(h.sending_facility), now.strftime("%Y%m%d%H%M%S"), "",
        f"ACK{comp}{e(trigger)}{comp}ACK" if trigger else "ACK", control_id or "ACK" + secrets.token_hex(8).upper(),
        e(h.processing_id or "P"), e(h.version or "2.5.1"),
    ]
    if h.charset_field:
        msh += ["", "", "", "", "", e(h.charset_field)]
    segments = [fs.join(msh[:1]) + fs + fs.join(msh[1:])]
    msa = ["MSA", code, e(h.control_id)]
    if text:
        msa.append(e(text[:80]))
    segments.append(fs.join(msa))
    if error is not None and code != "AA":
        where = [error.segment, str(error.seq)] + ([str(error.field)] if error.field is not None else [])
        label = ERROR_TEXT.get(error.code, "Application error")
        sub = enc[3]
        if _version_at_least(h.version, (2, 5)):
            err = ["ERR", "", comp.join(e(w) for w in where),
                   comp.join([error.code, e(label), "HL70357"]), "E", "", "", "", e(text)]
        else:
            err = ["ERR", comp.join([*(e(w) for w in where), *([""] if error.field is None else []),
                                     sub.join([error.code, e(label)])])]
        segments.append(fs.join(err))
    return "\r".join(segments) + "\r"
