"""Test support for WCTP and paging: the shared samples, posting documents, reading answers, and
putting a patient with a given nurse into a bed through the ADT path that exists (the care team)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy import select

from carerelay.core.actor import Actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.patients import service as patients
from carerelay.patients.models import Encounter, EncounterStatus
from tests.hl7support import SAMPLES as HL7_SAMPLES

WCTP_SAMPLES = HL7_SAMPLES.parent / "wctp"
ADT = Actor(person_id=None, username="hl7:test", roles=frozenset({"system"}))


def wctp_sample(name: str) -> bytes:
    return (WCTP_SAMPLES / name).read_bytes()


def samples_dir() -> Path:
    return WCTP_SAMPLES


@dataclass
class Answer:
    root: Any
    text: str

    @property
    def operation(self) -> Any:
        return self.root[0]

    @property
    def name(self) -> str:
        return str(self.operation.tag)

    def outcome(self) -> tuple[str, int, str]:
        """(Success|Failure, code, errorText/successText) of a Confirmation or the failure inside another answer."""
        node = self.operation
        for found in node.iter("wctp-Success", "wctp-Failure", "wctp-ClientSuccess"):
            kind = "Failure" if found.tag == "wctp-Failure" else "Success"
            code = found.get("errorCode") or found.get("successCode")
            return kind, int(code), found.get("errorText") or found.get("successText") or ""
        raise AssertionError(f"no outcome in {self.text}")

    def code(self) -> int:
        return self.outcome()[1]


def parse_answer(body: bytes) -> Answer:
    root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    assert root.tag == "wctp-Operation", body
    return Answer(root, body.decode())


def post(client: TestClient, body: bytes | str) -> Answer:
    response = client.post("/wctp", content=body if isinstance(body, bytes) else body.encode(),
                           headers={"Content-Type": "text/xml"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    return parse_answer(response.content)


def uniq(prefix: str = "T") -> str:
    return f"{prefix}{secrets.token_hex(4).upper()}"


def submit(*, sender: str = "nursecall-4w", code: str | None = "demo-secret", recipient: str = "4W-412-B",
           text: str = "BATHROOM CALL 4W 412-B", message_id: str | None = None, control: str = "",
           choices: tuple[str, ...] = (), version: str = "wctp-dtd-v1r3", originator: str = "wctp-Originator",
           extra_header: str = "") -> bytes:
    code_attr = f' securityCode="{code}"' if code is not None else ""
    message_id = message_id or uniq("M")
    if choices:
        payload = "<wctp-MCR><wctp-MessageText>" + text + "</wctp-MessageText>" + "".join(
            f"<wctp-Choice>{c}</wctp-Choice>" for c in choices) + "</wctp-MCR>"
    else:
        payload = f"<wctp-Alphanumeric>{text}</wctp-Alphanumeric>"
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<wctp-Operation wctpVersion="{version}"><wctp-SubmitRequest>'
            f'<wctp-SubmitHeader submitTimestamp="2026-11-24T08:05:00"{extra_header}>'
            f'<{originator} senderID="{sender}"{code_attr}/>'
            f'<wctp-MessageControl messageID="{message_id}"{control}/>'
            f'<wctp-Recipient recipientID="{recipient}"/></wctp-SubmitHeader>'
            f'<wctp-Payload>{payload}</wctp-Payload></wctp-SubmitRequest></wctp-Operation>').encode()


def poll(poller: str = "nursecall-4w", code: str = "demo-secret", acks: tuple[int, ...] = (),
         batch: int = 50) -> bytes:
    received = "".join(f'<wctp-MessageReceived sequenceNo="{s}"><wctp-Success successCode="200"/>'
                       f'</wctp-MessageReceived>' for s in acks)
    return (f'<?xml version="1.0"?><wctp-Operation wctpVersion="wctp-dtd-v1r3">'
            f'<wctp-PollForMessages pollerID="{poller}" securityCode="{code}" maxMessagesInBatch="{batch}">'
            f'{received}</wctp-PollForMessages></wctp-Operation>').encode()


@dataclass(frozen=True)
class Polled:
    sequence: int
    kind: str  # StatusInfo | MessageReply
    response_to: str
    notification: str | None
    text: str | None
    originator: str
    recipient: str


def polled(answer: Answer) -> list[Polled]:
    found = []
    for message in answer.operation.findall("wctp-Message"):
        inner = message[0]
        header = inner.find("wctp-ResponseHeader")
        notification = inner.find("wctp-Notification")
        text = inner.findtext("wctp-Payload/wctp-Alphanumeric")
        found.append(Polled(int(message.get("sequenceNo")), inner.tag.removeprefix("wctp-"),
                            header.get("responseToMessageID"),
                            notification.get("type") if notification is not None else None, text,
                            header.find("wctp-Originator").get("senderID"),
                            header.find("wctp-Recipient").get("recipientID")))
    return found


def drain(client: TestClient, poller: str = "nursecall-4w") -> list[Polled]:
    """Poll, acknowledge everything handed out, and return it."""
    got = polled(post(client, poll(poller)))
    if got:
        assert post(client, poll(poller, acks=tuple(p.sequence for p in got))).operation is not None
    return got


def occupy(db: Database, clock: FakeClock, *, unit: str, room: str, bed: str, nurse_unique_id: str,
           mrn: str | None = None, at: datetime | None = None) -> str:
    """Admit a fresh patient into the bed with this nurse on the care team (ROL, as ADT sends it),
    discharging whoever else the shared test database has in that bed (inside this test's transaction)."""
    mrn = mrn or uniq("MRN")
    when = at or clock.now()
    with db.unit_of_work() as session:
        while (occupant := patients.patient_in_bed(session=session, unit_code=unit, room=room, bed=bed)) is not None:
            # other tests commit admissions to the sample beds: empty the bed inside this test's transaction
            for enc in session.execute(select(Encounter).where(Encounter.patient_id == occupant.id,
                                                               Encounter.status == EncounterStatus.ACTIVE)).scalars():
                enc.status = EncounterStatus.DISCHARGED
            session.flush()
        nurse = patients.ProviderRef(id=nurse_unique_id)
        event = patients.AdtEvent(
            event="A01", patient=patients.Demographics(mrn=mrn, family="DOE", given="JANE"), event_at=when,
            location=patients.LocationRef(unit=unit, room=room, bed=bed),
            care_team=[patients.CareTeamEntry(role="RN", role_text="Primary Nurse", source="ROL", provider=nurse)])
        patients.apply_adt(session=session, clock=clock, actor=ADT, event=event)
    return mrn
