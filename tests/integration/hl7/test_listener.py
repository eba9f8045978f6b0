"""The MLLP listener over real TCP: store before ACK, ACK codes, duplicates, framing, encodings,
bad input — against the in-process runtime on both databases."""

from __future__ import annotations

import asyncio
import base64
import resource
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from carerelay.core.actor import Actor
from carerelay.core.clock import FakeClock
from carerelay.integrations.hl7.client import MLLPClient, ack_code
from carerelay.integrations.hl7.feeds import Feed
from carerelay.integrations.hl7.mllp import Frame, FrameReader, frame
from carerelay.integrations.hl7.models import Hl7Message
from carerelay.patients import service as patients
from carerelay.patients.models import ClinicalHandoff, Observation, Order, Patient
from tests.conftest import Backend, own_demo
from tests.hl7support import Running, personalise, running_listener, sample, uniq, wait_processed


@pytest.fixture(scope="module")
def engine(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """This module's own demo database: its listeners commit admissions of the samples' patient to
    4W-412-B, which would end that bed's demo nurse assignment for later tests sharing the run's one."""
    with own_demo(backend.name, tmp_path_factory.mktemp("hl7-listener")) as own:
        eng = own.engine()
        yield eng
        eng.dispose()


@pytest.fixture
def listener(engine: Engine, clock: FakeClock) -> Running:  # type: ignore[misc]
    with running_listener(engine, clock) as running:
        yield running


def _field(ack: bytes, segment: str, n: int) -> str:
    for seg in ack.split(b"\r"):
        if seg.startswith(segment.encode()):
            parts = seg.decode().split("|")
            return parts[n] if len(parts) > n else ""
    return ""


def _row(listener: Running, control: str) -> Hl7Message:
    with listener.db.unit_of_work() as session:
        return session.execute(select(Hl7Message).where(Hl7Message.control_id == control)).scalar_one()


def test_adt_then_oru_builds_census_care_team_and_critical_handoff(listener: Running, clock: FakeClock) -> None:
    mrn, c1, c2 = uniq("MRN"), uniq("C"), uniq("C")
    with MLLPClient("127.0.0.1", listener.port()) as client:
        adt = personalise(sample("adt_a01_admit.hl7"), mrn=mrn, control=c1).rstrip(b"\r")
        ack1 = client.send(adt + b"\rROL|2|AD|CP^Consulting Provider|9999999999^NOBODY^NEIL^^^DR^^^NPI\r")
        ack2 = client.send(personalise(sample("oru_r01_critical_potassium.hl7"), mrn=mrn, control=c2))
    assert ack_code(ack1) == "AA" and _field(ack1, "MSA", 2) == c1
    assert ack_code(ack2) == "AA" and _field(ack2, "MSA", 2) == c2
    assert _field(ack1, "MSH", 8).startswith("ACK^A01")
    assert _row(listener, c1).status == "processed" and _row(listener, c2).status == "processed"
    with listener.db.unit_of_work() as session:
        actor = Actor(person_id=None, username="test")
        _unit, census = patients.census(session=session, clock=clock, actor=actor, unit_code="4W")
        row = next(r for r in census if r.mrn == mrn)
        assert (row.room, row.bed, row.attending) == ("412", "B", "Dr. Gregory House")
        team = patients.care_team(session=session, clock=clock, actor=actor, patient_id=row.patient_id)
        by_role = {m.role: m for m in team}
        assert by_role["attending"].person_name == "Dr. Gregory House"
        assert by_role["RN"].person_name is not None and "Carol" in by_role["RN"].person_name
        assert by_role["referring"].person_name == "Dr. James Wilson"
        # not in the directory: kept by id and name, not dropped
        assert by_role["consulting"].person_name == "Dr. Lisa Cuddy"
        assert by_role["CP"].person_id is None and by_role["CP"].provider_id == "9999999999"
        assert by_role["CP"].provider_name == "DR NEIL NOBODY" and by_role["CP"].role_text == "Consulting Provider"
        obs = list(session.execute(select(Observation).where(Observation.patient_id == row.patient_id)).scalars())
        potassium = next(o for o in obs if o.code == "2823-3")
        assert potassium.critical and potassium.value == "6.8" and potassium.reference_range == "3.5-5.1"
        assert potassium.ordering_person_id == by_role["attending"].person_id
        sodium = next(o for o in obs if o.code == "2951-2")
        assert not sodium.critical and "repeat analysis" in sodium.notes  # an NTE belongs to the OBX before it
        handoff = session.execute(select(ClinicalHandoff).where(ClinicalHandoff.subject_id == potassium.id,
                                                                ClinicalHandoff.kind == "critical_result")).scalar_one()
        assert handoff.recipient_person_id == potassium.ordering_person_id
        assert "6.8" in handoff.summary and handoff.claimed_at is None


def test_stat_order_is_marked_and_handed_off(listener: Running) -> None:
    mrn, c = uniq("MRN"), uniq("O")
    with MLLPClient("127.0.0.1", listener.port()) as client:
        assert ack_code(client.send(personalise(sample("orm_o01_stat_order.hl7"), mrn=mrn, control=c))) == "AA"
    with listener.db.unit_of_work() as session:
        pid = session.execute(select(Patient.id).where(Patient.mrn == mrn)).scalar_one()
        order = session.execute(select(Order).where(Order.patient_id == pid)).scalar_one()
        assert order.stat and order.priority == "S" and order.code == "71045" and order.placer_order == "ORD900"
        assert session.execute(select(ClinicalHandoff).where(ClinicalHandoff.subject_id == order.id,
                                                             ClinicalHandoff.kind == "stat_order")).scalar_one()


def test_duplicate_is_acked_again_and_not_processed_twice(listener: Running) -> None:
    mrn, c = uniq("MRN"), uniq("D")
    message = personalise(sample("oru_r01_critical_potassium.hl7"), mrn=mrn, control=c)
    with MLLPClient("127.0.0.1", listener.port()) as client:
        first, second = client.send(message), client.send(message)
    assert ack_code(first) == ack_code(second) == "AA"
    row = _row(listener, c)
    assert row.duplicates == 1
    with listener.db.unit_of_work() as session:
        pid = session.execute(select(Patient.id).where(Patient.mrn == mrn)).scalar_one()
        assert len(list(session.execute(select(Observation).where(Observation.patient_id == pid)).scalars())) == 2


def test_many_messages_one_connection_nuls_and_line_endings(listener: Running) -> None:
    mrn = uniq("MRN")
    controls = [uniq("M") for _ in range(3)]
    adt = personalise(sample("adt_a01_admit.hl7"), mrn=mrn, control=controls[0])
    lf = personalise(sample("adt_a02_transfer.hl7"), mrn=mrn, control=controls[1]).replace(b"\r", b"\n")
    crlf = personalise(sample("adt_a03_discharge.hl7"), mrn=mrn, control=controls[2]).replace(b"\r", b"\r\n")
    with MLLPClient("127.0.0.1", listener.port()) as client:
        client.send_raw(b"\x00\x00" + frame(adt) + b"\x00\r\n" + frame(lf) + b"\n\x00" + frame(crlf))
        acks = [client.read_ack() for _ in range(3)]
    assert [ack_code(a) for a in acks] == ["AA", "AA", "AA"]
    assert [_field(a, "MSA", 2) for a in acks] == controls  # answered in order
    with listener.db.unit_of_work() as session:
        _patient, enc = patients.access_patient(session=session, clock=FakeClock(),
                                               actor=Actor(None, "t"), mrn=mrn)
        assert enc is not None and enc.status == "discharged" and enc.location == "ICU^2^A"


def test_unknown_type_for_feed_is_rejected_and_stored(listener: Running) -> None:
    c = uniq("R")
    adt = personalise(sample("adt_a01_admit.hl7"), mrn=uniq("MRN"), control=c)
    with MLLPClient("127.0.0.1", listener.port("lab")) as client:
        ack = client.send(adt)
    assert ack_code(ack) == "AR" and _field(ack, "MSA", 2) == c
    assert "200" in _field(ack, "ERR", 3)
    row = _row(listener, c)
    assert row.status == "error" and "not accepted" in (row.error or "") and row.raw == adt


def test_missing_pid3_is_ae_naming_segment_and_field(listener: Running) -> None:
    c = uniq("E")
    bad = personalise(sample("adt_a01_admit.hl7"), mrn="", control=c).replace(b"PID|1||^^^MAINHOSP^MR", b"PID|1||")
    with MLLPClient("127.0.0.1", listener.port()) as client:
        ack = client.send(bad)
    assert ack_code(ack) == "AE"
    assert _field(ack, "ERR", 2) == "PID^1^3" and _field(ack, "ERR", 3).startswith("101^")
    assert _row(listener, c).status == "error"


def test_not_hl7_and_garbage_get_ar_and_connection_keeps_serving(listener: Running) -> None:
    with MLLPClient("127.0.0.1", listener.port()) as client:
        ack = client.send(b"hello, is this the lab?")
        assert ack_code(ack) == "AR"
        client.send_raw(b"GET / HTTP/1.1\r\n\r\n")
        client.send_raw(frame(personalise(sample("adt_a01_admit.hl7"), mrn=uniq("MRN"), control=uniq("G"))))
        acks = [client.read_ack(), client.read_ack()]
    assert [ack_code(a) for a in acks] == ["AR", "AA"]
    with listener.db.unit_of_work() as session:
        stored = session.execute(select(Hl7Message).where(Hl7Message.raw == b"hello, is this the lab?")).scalar_one()
        assert stored.status == "error" and stored.ack_code == "AR"


def test_latin1_feed_and_utf8_msh18(listener: Running) -> None:
    mrn1, mrn2 = uniq("MRN"), uniq("MRN")
    latin = personalise(sample("oru_r01_critical_potassium.hl7"), mrn=mrn1, control=uniq("L")).replace(
        b"DOE^JANE^Q", "MÜLLER^JOSÉ".encode("latin-1"))
    utf8 = personalise(sample("adt_a01_admit.hl7"), mrn=mrn2, control=uniq("U")).replace(
        b"DOE^JANE^Q", "ŁUKASZ^ZOË".encode()).replace(b"|P|2.5.1", b"|P|2.5.1||||||UNICODE UTF-8")
    with MLLPClient("127.0.0.1", listener.port("lab")) as client:
        assert ack_code(client.send(latin)) == "AA"
    with MLLPClient("127.0.0.1", listener.port("lab")) as client:
        pass
    with MLLPClient("127.0.0.1", listener.port()) as client:
        ack = client.send(utf8)
        assert ack_code(ack) == "AA" and b"UNICODE UTF-8" in ack
    with listener.db.unit_of_work() as session:
        names = {p.mrn: (p.family_name, p.given_name) for p in session.execute(
            select(Patient).where(Patient.mrn.in_([mrn1, mrn2]))).scalars()}
    assert names == {mrn1: ("MÜLLER", "JOSÉ"), mrn2: ("ŁUKASZ", "ZOË")}


def test_big_message_accepted_and_oversize_refused(engine: Engine, clock: FakeClock) -> None:
    from carerelay.config import load_settings

    settings = load_settings(database_url="sqlite:///:memory:", mllp_max_message_bytes=2 * 1024 * 1024)
    with running_listener(engine, clock, settings=settings) as running:
        big_pdf = b"A" * (1024 * 1024)  # 1 MiB of base64 in OBX-5: far above python-hl7's 64 KiB default
        base = personalise(sample("oru_r01_critical_potassium.hl7"), mrn=uniq("MRN"), control=uniq("B"))
        big = base.replace(b"NTE|1|L|", b"OBX|3|ED|PDF^Report^L||^AP^PDF^Base64^" + big_pdf + b"||||||F\rNTE|1|L|")
        too_big = personalise(sample("oru_r01_critical_potassium.hl7"), mrn=uniq("MRN"), control=uniq("X"))
        too_big = too_big.replace(b"NTE|1|L|", b"NTE|1|L|" + b"B" * (10 * 1024 * 1024))
        with MLLPClient("127.0.0.1", running.port()) as client:
            assert ack_code(client.send(big)) == "AA"
            refused = client.send(too_big)
            assert ack_code(refused) == "AR" and b"limit" in refused
            assert ack_code(client.send(personalise(sample("adt_a01_admit.hl7"), mrn=uniq("MRN"),
                                                    control=uniq("N")))) == "AA"


def test_allow_list_refuses_other_addresses(listener: Running) -> None:
    with MLLPClient("127.0.0.1", listener.port("walled"), timeout=10) as client:
        control = uniq("W")
        client.send_raw(frame(personalise(sample("adt_a01_admit.hl7"), mrn=uniq("MRN"), control=control)))
        try:
            answer = client.sock.recv(100)
        except ConnectionResetError:
            answer = b""
        assert answer == b""  # closed without an ACK
    with listener.db.unit_of_work() as session:
        assert session.execute(select(Hl7Message).where(Hl7Message.control_id == control)).first() is None


def test_idle_truncated_and_many_connections(engine: Engine, clock: FakeClock) -> None:
    from carerelay.config import load_settings

    settings = load_settings(database_url="sqlite:///:memory:", mllp_idle_timeout_seconds=0.5)
    with running_listener(engine, clock, settings=settings) as running:
        port = running.port("receipt")
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        truncated = socket.create_connection(("127.0.0.1", port), timeout=10)
        truncated.sendall(b"\x0bMSH|^~\\&|EPIC|X|Y|Z|20261124||ADT^A01|TRUNC1|P|2.5.1\rPID|1||")
        truncated.close()
        results: list[str] = []
        lock = threading.Lock()

        def one(i: int) -> None:
            with MLLPClient("127.0.0.1", port) as client:
                code = ack_code(client.send(personalise(sample("adt_a01_admit.hl7"), mrn=uniq("MRN"),
                                                        control=uniq(f"P{i}"))))
            with lock:
                results.append(code)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == ["AA"] * 50
        assert idle.recv(10) == b""  # the silent client was closed by the idle timeout
        idle.close()
        with running.db.unit_of_work() as session:
            assert session.execute(select(Hl7Message).where(Hl7Message.control_id == "TRUNC1")).first() is None


def test_receipt_mode_acks_then_processes_in_order(listener: Running) -> None:
    mrn = uniq("MRN")
    controls = [uniq("Q") for _ in range(4)]
    names = ["adt_a01_admit.hl7", "adt_a02_transfer.hl7", "adt_a03_discharge.hl7", "adt_a01_admit.hl7"]
    with MLLPClient("127.0.0.1", listener.port("receipt")) as client:
        acks = [client.send(personalise(sample(n), mrn=mrn, control=c)) for n, c in zip(names, controls, strict=True)]
    assert [ack_code(a) for a in acks] == ["AA"] * 4
    ids = [_row(listener, c).id for c in controls]
    assert ids == sorted(ids)
    rows = wait_processed(listener.db, ids)
    assert {r.status for r in rows} == {"processed"}
    with listener.db.unit_of_work() as session:
        _, enc = patients.access_patient(session=session, clock=FakeClock(),
                                         actor=Actor(None, "t"), mrn=mrn)
        # admit, transfer, discharge, then a new admission (a new encounter) back on 4W-412-B
        assert enc is not None and enc.status == "active" and enc.location == "4W^412^B"


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from datetime import UTC, datetime, timedelta
    from ipaddress import ip_address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "mllp.pem", tmp / "mllp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_feed(engine: Engine, clock: FakeClock, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    feeds = [Feed(name="secure", port=0, ack_mode="processed", tls_cert=str(cert), tls_key=str(key))]
    with running_listener(engine, clock, feeds=feeds) as running:
        context = ssl.create_default_context(cafile=str(cert))
        with MLLPClient("127.0.0.1", running.port("secure"), tls=context) as client:
            ack = client.send(personalise(sample("adt_a01_admit.hl7"), mrn=uniq("MRN"), control=uniq("T")))
        assert ack_code(ack) == "AA"
        with pytest.raises(ssl.SSLError), socket.create_connection(("127.0.0.1", running.port("secure"))) as raw, \
                ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1"):
            pass  # a client that does not trust the certificate is refused


def test_connection_limit_refuses_extra_connections_and_keeps_serving(engine: Engine, clock: FakeClock) -> None:
    from carerelay.config import load_settings

    settings = load_settings(database_url="sqlite:///:memory:", mllp_max_connections=2)
    with running_listener(engine, clock, settings=settings) as running:
        port = running.port("receipt")
        with MLLPClient("127.0.0.1", port) as first, MLLPClient("127.0.0.1", port) as second:
            assert ack_code(first.send(personalise(sample("adt_a01_admit.hl7"), mrn=uniq("MRN"),
                                                   control=uniq("L")))) == "AA"
            assert ack_code(second.send(personalise(sample("adt_a01_admit.hl7"), mrn=uniq("MRN"),
                                                    control=uniq("L")))) == "AA"
            with MLLPClient("127.0.0.1", port, timeout=10) as third:
                try:
                    closed = third.sock.recv(10) == b""
                except ConnectionResetError:
                    closed = True
                assert closed  # over the limit: closed at once, without reading
            assert ack_code(first.send(personalise(sample("adt_a01_admit.hl7"), mrn=uniq("MRN"),
                                                   control=uniq("L")))) == "AA"


@pytest.fixture
def many_files() -> Iterator[None]:
    """A thousand client sockets and their thousand server ends live in this one process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_thousand_connections_at_once(engine: Engine, clock: FakeClock, many_files: None) -> None:
    """1,000 connections open together (the default limit): 999 held, of which 500 send a message at
    the same moment and 499 stay silent, then one more client is served; every AA'd message is stored."""
    from carerelay.config import load_settings

    settings = load_settings(database_url="sqlite:///:memory:", mllp_idle_timeout_seconds=120)
    template = sample("adt_a01_admit.hl7").replace(b"ADT^A01^ADT_A01", b"ADT^A31^ADT_A05")  # stored, filtered
    controls = [uniq("K") for _ in range(500)]
    with running_listener(engine, clock, settings=settings) as running:
        port = running.port("receipt")

        async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, control: str) -> str:
            writer.write(frame(personalise(template, mrn=uniq("MRN"), control=control)))
            await writer.drain()
            frames = FrameReader(1 << 20)
            while True:
                data = await asyncio.wait_for(reader.read(4096), timeout=60)
                assert data, "closed before the ACK"
                for event in frames.feed(data):
                    if isinstance(event, Frame):
                        return ack_code(event.payload)

        def fresh_client() -> str:
            with MLLPClient("127.0.0.1", port, timeout=30) as client:
                return ack_code(client.send(personalise(sample("adt_a01_admit.hl7"), mrn=uniq("MRN"),
                                                        control=uniq("F"))))

        async def scenario() -> tuple[list[str], str, int]:
            conns = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(999)))
            codes = await asyncio.gather(*(one(r, w, c) for (r, w), c in zip(conns[:500], controls, strict=True)))
            served = await asyncio.to_thread(fresh_client)  # the 1,000th, while 999 are open
            silent_open = sum(1 for r, _ in conns[500:] if not r.at_eof())
            for _, w in conns:
                w.close()
            await asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True)
            return codes, served, silent_open

        started = time.monotonic()
        codes, served, silent_open = asyncio.run(scenario())
        elapsed = time.monotonic() - started
    assert codes == ["AA"] * 500 and served == "AA" and silent_open == 499
    with running.db.unit_of_work() as session:
        stored = set(session.execute(select(Hl7Message.control_id).where(Hl7Message.control_id.in_(controls)))
                     .scalars())
    assert stored == set(controls)  # nothing ACKed is missing
    assert elapsed < 60


def test_a_10_mb_message_is_accepted_under_the_default_limit(engine: Engine, clock: FakeClock) -> None:
    """An ORU carrying a 10 MB base64 PDF (OBX-5, type ED): stored whole, ACKed AA, processed."""
    from carerelay.config import load_settings

    settings = load_settings(database_url="sqlite:///:memory:", mllp_idle_timeout_seconds=60)
    assert settings.mllp_max_message_bytes == 16 * 1024 * 1024  # the default
    pdf = base64.b64encode(b"%PDF-1.4 " + bytes(range(256)) * (7_600_000 // 256))
    assert len(pdf) > 10_000_000
    control = uniq("BIG")
    base = personalise(sample("oru_r01_critical_potassium.hl7"), mrn=uniq("MRN"), control=control)
    big = base.replace(b"NTE|1|L|", b"OBX|3|ED|PDF^Report^L||^AP^PDF^Base64^" + pdf + b"||||||F\rNTE|1|L|")
    with running_listener(engine, clock, settings=settings) as running, \
            MLLPClient("127.0.0.1", running.port("receipt"), timeout=60) as client:
        assert ack_code(client.send(big)) == "AA"
        row = _row(running, control)
        assert row.size == len(big) and row.raw == big
        [done] = wait_processed(running.db, [row.id], timeout=60)
        assert done.status == "processed"
        with running.db.unit_of_work() as session:
            values = session.execute(select(Observation.value).where(Observation.source_message_id == row.id,
                                                                     Observation.value_type == "ED")).scalars()
            assert [len(v) for v in values] == [len(pdf)]  # the data component (ED-5), whole
