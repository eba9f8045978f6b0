"""Parser, ACK builder and MLLP framing on real-world quirks, plus property-based tests (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carerelay.core.errors import CarerelayError
from carerelay.integrations.hl7.ack import ErrorLocation, build_ack, escape
from carerelay.integrations.hl7.feeds import Feed
from carerelay.integrations.hl7.mllp import Frame, FrameReader, Garbage, Oversize, frame
from carerelay.integrations.hl7.parser import HL7Error, charset_of, header_of, parse
from carerelay.integrations.hl7.processor import adt_event, check_message, orders, parse_ts, result_report
from tests.hl7support import SAMPLES

NOW = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
HL7_FEED = Feed(name="t", port=0, timezone="America/Chicago")
ADT = ("MSH|^~\\&|EPIC|MAINHOSP|CARERELAY|MAINHOSP|20261124083000||ADT^A01^ADT_A01|MSG1|P|2.5.1\r"
       "PID|1||MRN1^^^H^MR~999^^^SSA^SS||DOE^JANE\rZPV|VIP|Y")


def test_escape_sequences_are_undone() -> None:
    text = ("MSH|^~\\&|A|B|C|D|20261124||ORU^R01|C1|P|2.5.1\r"
            "PID|1||M1||O\\F\\BRIEN\\S\\X\\T\\Y\\R\\Z\\E\\END^ANN\r"
            "OBX|1|TX|1^Note||line\\X0D\\two\\X41\\")
    p = parse(text.encode())
    pid = p.first("PID")
    assert pid is not None and pid.get(5, 1) == "O|BRIEN^X&Y~Z\\END" and pid.get(5, 2) == "ANN"
    obx = p.first("OBX")
    assert obx is not None and obx.get(5) == "line\rtwoA"


def test_non_default_encoding_characters() -> None:
    text = "MSH#*$!@#A#B#C#D#20261124##ADT*A01#C9#P#2.3\rPID#1##M9**H*MR$M9B##SMITH*JO!F!X"
    p = parse(text.encode())
    assert p.message_type == "ADT^A01" and p.control_id == "C9"
    pid = p.first("PID")
    assert pid is not None
    assert pid.get(3, 1) == "M9" and pid.get(3, 1, rep=2) == "M9B" and pid.get(5, 2) == "JO#X"


def test_missing_fields_and_z_segments_read_empty() -> None:
    p = parse(ADT.encode())
    pid = p.first("PID")
    assert pid is not None
    assert pid.get(40) == "" and pid.get(5, 9) == "" and pid.get(3, 1, rep=5) == "" and pid.get(3, 4, 2) == ""
    zpv = p.first("ZPV")
    assert zpv is not None and zpv.get(1) == "VIP"
    assert pid.get(3, 1, rep=2) == "999" and pid.repetitions(3) == 2


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_segment_endings(sep: str) -> None:
    p = parse(ADT.replace("\r", sep).encode())
    assert [s.name for s in p.segments] == ["MSH", "PID", "ZPV"]


def test_charsets() -> None:
    latin = ADT.replace("DOE^JANE", "MÜLLER^JOSÉ").replace("|P|2.5.1", "|P|2.5.1||||||8859/1").encode("latin-1")
    assert charset_of(latin, "utf-8") == "latin-1"
    pid = parse(latin, "utf-8").first("PID")
    assert pid is not None and pid.get(5, 1) == "MÜLLER"
    bad_utf8 = ADT.replace("DOE", "D\xd6E").encode("latin-1")  # feed says UTF-8, bytes are Latin-1
    parsed = parse(bad_utf8, "utf-8")
    assert parsed.fallback and parsed.codec == "latin-1"


@pytest.mark.parametrize("raw", [b"", b"hello", b"PID|1||X", b"MSHA^~\\&|", b"\x00\x01\x02MSH"])
def test_not_hl7_is_rejected(raw: bytes) -> None:
    with pytest.raises(HL7Error) as info:
        parse(raw)
    assert info.value.reject


def test_ack_for_each_version_and_error() -> None:
    h = header_of(parse(ADT.encode()))
    ack = build_ack(h, "AE", now=NOW, text="PID-3 is empty", error=ErrorLocation("PID", 1, 3, "101"))
    segs = ack.split("\r")
    assert segs[0].startswith("MSH|^~\\&|CARERELAY|MAINHOSP|EPIC|MAINHOSP|20261124140000||ACK^A01^ACK|")
    assert segs[1] == "MSA|AE|MSG1|PID-3 is empty"
    assert segs[2] == "ERR||PID^1^3|101^Required field missing^HL70357|E||||PID-3 is empty"
    old = header_of(parse(ADT.replace("2.5.1", "2.3").encode()))
    ack23 = build_ack(old, "AR", now=NOW, text="x", error=ErrorLocation("MSH", 1, 9, "200"))
    assert "ERR|MSH^1^9^200&Unsupported message type" in ack23


ALPHABET = st.characters(codec="utf-8", exclude_categories=["Cs"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.text(alphabet=ALPHABET, max_size=40), code=st.sampled_from(["AA", "AE", "AR"]),
       control=st.text(alphabet=ALPHABET, min_size=1, max_size=20))
def test_ack_round_trips_through_the_parser(value: str, code: str, control: str) -> None:
    """Whatever the text and control id, the ACK parses, MSA-1 is the code and MSA-2/3 come back intact."""
    value, control = value.strip("\x00"), control.strip("\x00")
    h = header_of(parse(ADT.encode()))
    h = type(h)(**{**h.__dict__, "control_id": control})
    ack = build_ack(h, code, now=NOW, text=value, error=ErrorLocation("PID", 1, 3, "101"))
    parsed = parse(ack.encode())
    msa = parsed.first("MSA")
    assert msa is not None and msa.get(1) == code
    assert (msa.get(2) == control.strip() and msa.get(3) == value[:80].strip()) or "\r" in value[:80] or \
        "\n" in value[:80]
    assert [s.name for s in parsed.segments][:2] == ["MSH", "MSA"]


@settings(max_examples=300)
@given(raw=st.binary(max_size=300))
def test_parser_never_crashes_on_bytes(raw: bytes) -> None:
    """Any bytes: either a parsed message or an HL7Error, never another exception."""
    try:
        parsed = parse(raw)
    except HL7Error:
        return
    assert parsed.msh.name == "MSH"
    header_of(parsed)


FIELD = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)


@settings(max_examples=200)
@given(values=st.lists(FIELD, min_size=1, max_size=6))
def test_escaped_values_parse_back(values: list[str]) -> None:
    """A value escaped by our builder's rules reads back identical through python-hl7 and our accessor."""
    seg = "ZXX|" + "|".join(escape(v, "|", "^~\\&") for v in values)
    parsed = parse(("MSH|^~\\&|A|B|C|D|20261124||ADT^A08|C1|P|2.5.1\r" + seg).encode())
    zxx = parsed.first("ZXX")
    assert zxx is not None
    assert [zxx.get(i + 1) for i in range(len(values))] == [v.strip() for v in values]


@settings(max_examples=200)
@given(payloads=st.lists(st.binary(max_size=200).filter(lambda b: b"\x0b" not in b and b"\x1c" not in b),
                         min_size=1, max_size=5),
       cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=10))
def test_framing_survives_any_chunking(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(b"\x00\r\n" + frame(p) for p in payloads)
    reader = FrameReader(10_000)
    events = []
    pos = 0
    for cut in cuts:
        events += reader.feed(stream[pos:pos + cut])
        pos += cut
    events += reader.feed(stream[pos:])
    assert [e.payload for e in events if isinstance(e, Frame)] == payloads
    assert reader.pending == 0


def test_framing_oversize_and_garbage() -> None:
    reader = FrameReader(100)
    events = reader.feed(b"junk" + frame(b"x" * 500) + frame(b"MSH|ok"))
    assert isinstance(events[0], Garbage) and isinstance(events[1], Oversize) and events[1].size == 500
    assert events[2] == Frame(b"MSH|ok")
    reader.feed(b"\x0bMSH|partial")
    assert reader.pending == len(b"MSH|partial")


@pytest.mark.parametrize(("value", "expected"), [
    ("20261124083000", "2026-11-24T14:30:00+00:00"),
    ("202611240830", "2026-11-24T14:30:00+00:00"),
    ("20261124", "2026-11-24T06:00:00+00:00"),
    ("20261124083000.25-0500", "2026-11-24T13:30:00.250000+00:00"),
    ("20261124083000+0000", "2026-11-24T08:30:00+00:00"),
])
def test_timestamps(value: str, expected: str) -> None:
    ts = parse_ts(value, "America/Chicago")
    assert ts is not None and ts.isoformat() == expected


@pytest.mark.parametrize("value", ["", '""', "2026", "garbage", "20261340"])
def test_bad_timestamps_are_none(value: str) -> None:
    assert parse_ts(value) is None or value == "2026"


@pytest.mark.parametrize(("overrides", "setting"), [
    ({"hl7_timezone": "Mars/Olympus"}, "CARERELAY_HL7_TIMEZONE"),
    ({"hl7_feeds": "{not json"}, "CARERELAY_HL7_FEEDS"),
    ({"hl7_feeds": '[{"name": "lab", "port": 2576, "colour": "red"}]'}, "CARERELAY_HL7_FEEDS"),
    ({"hl7_feeds": '[{"name": "default", "port": 2576}]'}, "CARERELAY_HL7_FEEDS"),
    ({"mllp_allow": "10.0.0.0/33"}, "CARERELAY_MLLP_ALLOW"),
    ({"hl7_encoding": "klingon"}, "CARERELAY_HL7_ENCODING"),
])
def test_wrong_feed_settings_name_the_setting(overrides: dict[str, str], setting: str) -> None:
    from carerelay.config import ConfigError, load_settings
    from carerelay.integrations.hl7.feeds import feeds_from

    with pytest.raises(ConfigError, match=setting):
        feeds_from(load_settings(**overrides))


def test_feeds_from_settings() -> None:
    import ipaddress

    from carerelay.config import load_settings
    from carerelay.integrations.hl7.feeds import feeds_from

    feeds = feeds_from(load_settings(mllp_port=0, mllp_allow="10.1.0.0/16", hl7_feeds=(
        '[{"name":"lab","port":2576,"message_types":["ORU^R01"],"encoding":"8859/1","ack_mode":"processed"}]')))
    default, lab = feeds
    assert not default.listen and default.allows("10.1.2.3") and not default.allows("127.0.0.1")
    assert default.accepts("ADT^A40") and not default.accepts("SIU^S12")
    assert lab.listen and lab.charset == "iso8859-1" and lab.accepts("ORU^R01") and not lab.accepts("ADT^A01")
    assert lab.allows("192.168.1.1") and ipaddress.ip_address("10.1.2.3")


DAMAGEABLE = [p.read_bytes() for p in sorted(SAMPLES.glob("*.hl7"))]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sample=st.sampled_from(DAMAGEABLE), data=st.data())
def test_damaged_samples_are_a_message_or_a_coded_refusal(sample: bytes, data: st.DataObject) -> None:
    """Random bytes rarely get past "starts with MSH"; a real message damaged a few bytes at a time
    reaches the header check, the field accessors and the mapping to patients, results and orders.
    Each step answers a value or a refusal the store records (HL7Error, or a named invalid value)."""
    raw = bytearray(sample)
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(raw) - 1))
        match data.draw(st.sampled_from(["drop", "insert", "replace"])):
            case "drop":
                del raw[at]
            case "insert":
                raw.insert(at, data.draw(st.sampled_from(b"|^~\\&\r\n\x00MSHPIDOBX0129 ")))
            case _:
                raw[at] = data.draw(st.integers(0, 255))
    try:
        parsed = parse(bytes(raw))
        header_of(parsed)
        if check_message(parsed, HL7_FEED) is not None:
            return
        kind = parsed.msh.get(9, 1).upper()
        if kind == "ADT":
            adt_event(parsed, HL7_FEED, None)
        elif kind == "ORU":
            result_report(parsed, HL7_FEED, None)
        elif kind == "ORM":
            orders(parsed, HL7_FEED, None)
    except (HL7Error, CarerelayError):
        return


def _python_hl7_value(message: object, segment: object, field: int, comp: int, sub: int, rep: int) -> str:
    """What the accessor returned when it walked python-hl7's parse tree: the reference."""
    from hl7.util import unescape

    node: object = segment[field] if field < len(segment) else ""  # type: ignore[index, arg-type]
    if str(segment[0]) == "MSH" and field in (1, 2):  # type: ignore[index]
        return str(node)
    for index in (rep, comp, sub):
        if isinstance(node, str):
            if index != 1:
                return ""
            continue
        if index > len(node):  # type: ignore[arg-type]
            return ""
        node = node[index - 1]  # type: ignore[index]
    while not isinstance(node, str):
        node = node[0] if len(node) else ""  # type: ignore[index, arg-type]
    return str(unescape(message, node)).strip() if node else ""


DELIMS = st.lists(st.sampled_from("|^~\\&#*$!@%"), min_size=5, max_size=5, unique=True).map("".join)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(delims=DELIMS, bodies=st.lists(st.text(alphabet="AB1 |^~\\&#*$!@%", max_size=30), min_size=1, max_size=4),
       names=st.lists(st.sampled_from(["PID", "OBX", "ZXX", "MSH", "BHS", "P"]), min_size=4, max_size=4))
def test_values_read_exactly_as_python_hl7_reads_them(delims: str, bodies: list[str], names: list[str]) -> None:
    """The accessor splits values on demand; every field, component, subcomponent and repetition it
    reads (escapes, empty and missing parts, MSH-1/MSH-2, a second MSH) matches python-hl7's tree."""
    import hl7

    fs, enc = delims[0], delims[1] + delims[2] + delims[4] + delims[3]  # MSH-2: comp, rep, esc, sub
    lines = [f"MSH{fs}{enc}{fs}A{fs}B{delims[1]}X{fs}C{fs}D{fs}20261124{fs}{fs}ADT{delims[1]}A08{fs}C1{fs}P{fs}2.5"]
    lines += [f"{name}{fs}{body}" for name, body in zip(names, bodies, strict=False)]
    text = "\r".join(lines)
    ours = parse(text.encode())
    reference = hl7.parse(text)
    assert [s.name for s in ours.segments] == [str(s[0]) for s in reference]
    for seg, ref in zip(ours.segments, reference, strict=True):
        for field in range(0, 8):
            assert seg.raw(field) == (str(ref[field]) if field < len(ref) else "")
            expected_reps = len(ref[field]) if field < len(ref) and not isinstance(ref[field], str) else \
                (1 if field < len(ref) and ref[field] else 0)
            assert seg.repetitions(field) == expected_reps
            for comp, sub, rep in ((1, 1, 1), (2, 1, 1), (1, 2, 1), (3, 2, 1), (1, 1, 2), (2, 2, 2), (1, 1, 3)):
                assert seg.get(field, comp, sub, rep) == _python_hl7_value(reference, ref, field, comp, sub, rep), \
                    (seg.name, field, comp, sub, rep)


def test_delimiters_that_are_not_all_different_are_refused() -> None:
    with pytest.raises(HL7Error) as info:
        parse(b"MSH|^^\\&|A|B|C|D|20261124||ADT^A08|C1|P|2.5")
    assert info.value.reject
