"""The patients of the simulated day and the traffic that speaks for them: HL7 v2 ADT (A01 admit, A02
transfer, A03 discharge) and ORU^R01 results as the EHR and the lab send them, and WCTP SubmitRequests
as nurse-call and telemetry servers post them — shaped like the samples in ../shared/samples.

Timestamps carry their UTC offset (``-0500``), so a message sent in the repeated hour of the autumn
DST change still names one instant. Every name and number is synthetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from html import escape
from random import Random
from zoneinfo import ZoneInfo

from carerelay.simulation.hospital import BedRef, Clinician

FAMILIES = ("ALVAREZ", "BECKETT", "CHEN", "DUBOIS", "ELLISON", "FOSTER", "GARCIA", "HOLM", "IBRAHIM", "JENSEN",
            "KOWALCZYK", "LAMBERT", "MORENO", "NAKAMURA", "OKONKWO", "PRICE", "QUIROGA", "ROSSI", "SANTIAGO",
            "THORNE", "UNDERWOOD", "VASQUEZ", "WEBER", "YAMADA", "ZIMMER")
GIVENS = ("ANNA", "BORIS", "CARMEN", "DAVID", "EDITH", "FRANK", "GLORIA", "HENRY", "IRIS", "JOSEPH", "KAREN",
          "LOUIS", "MARTA", "NOEL", "OLGA", "PAUL", "RUTH", "SAMUEL", "TERESA", "VICTOR", "WANDA", "YUSUF")
UNKNOWN_PROVIDER = ("9999999993", "OUTSIDE", "PRIYA")
"""An ordering provider the directory does not know (a physician from another practice)."""


@dataclass(frozen=True)
class Patient:
    mrn: str
    family: str
    given: str
    birth: date
    sex: str
    attending: Clinician


@dataclass(frozen=True)
class Test:
    code: str
    text: str
    units: str
    reference: str
    low: float
    high: float
    critical: tuple[tuple[float, str], ...]  # (value, flag) choices


TESTS = (
    Test("2823-3", "Potassium", "mmol/L", "3.5-5.1", 3.6, 5.0, ((6.8, "HH"), (2.6, "LL"))),
    Test("2951-2", "Sodium", "mmol/L", "136-145", 136, 144, ((118, "LL"), (162, "HH"))),
    Test("2345-7", "Glucose", "mg/dL", "70-99", 72, 98, ((38, "LL"), (540, "HH"))),
    Test("718-7", "Hemoglobin", "g/dL", "12.0-16.0", 12.1, 15.8, ((5.9, "LL"),)),
    Test("32693-4", "Lactate", "mmol/L", "0.5-2.2", 0.6, 2.1, ((5.4, "HH"),)),
    Test("6598-7", "Troponin T", "ng/mL", "0.00-0.01", 0.0, 0.01, ((0.92, "HH"),)),
    Test("777-3", "Platelets", "10*3/uL", "150-400", 160, 390, ((18, "LL"),)),
)


def make_patient(rng: Random, n: int, attending: Clinician) -> Patient:
    return Patient(mrn=f"SIM{n:06d}", family=rng.choice(FAMILIES), given=rng.choice(GIVENS),
                   birth=date(rng.randint(1932, 2004), rng.randint(1, 12), rng.randint(1, 28)),
                   sex=rng.choice("FM"), attending=attending)


def hl7_time(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%Y%m%d%H%M%S%z")


def _xcn(npi: str, family: str, given: str) -> str:
    return f"{npi}^{family.upper()}^{given.upper()}^^^DR^^^NPI"


def _attending(patient: Patient) -> str:
    doctor = patient.attending
    return _xcn(doctor.npi or "", doctor.family, doctor.given)


def _pid(patient: Patient) -> str:
    return f"PID|1||{patient.mrn}^^^MAINHOSP^MR||{patient.family}^{patient.given}||{patient.birth:%Y%m%d}|{patient.sex}"


def _location(bed: BedRef) -> str:
    return f"{bed.unit}^{bed.room}^{bed.bed}^{bed.facility}"


def adt(event: str, *, patient: Patient, bed: BedRef, at: datetime, tz: ZoneInfo, control: str,
        admitted_at: datetime, prior: BedRef | None = None) -> bytes:
    """An A01, A02 (``prior`` the bed left) or A03, with PV1-7 attending and PV1-44/45 times."""
    ts = hl7_time(at, tz)
    pv1 = ["PV1", "1", "I", _location(bed), "", "", _location(prior) if prior else "", _attending(patient)]
    pv1 += [""] * 11 + [f"V{patient.mrn}"] + [""] * 24 + [hl7_time(admitted_at, tz), ts if event == "A03" else ""]
    segments = [f"MSH|^~\\&|EPIC|MAINHOSP|CARERELAY|MAINHOSP|{ts}||ADT^{event}^ADT_{event}|{control}|P|2.5.1",
                f"EVN|{event}|{ts}", _pid(patient), "|".join(pv1).rstrip("|")]
    return ("\r".join(segments) + "\r").encode()


def oru(*, patient: Patient, bed: BedRef, at: datetime, tz: ZoneInfo, control: str, test: Test, value: str,
        flag: str, ordering: tuple[str, str, str]) -> bytes:
    """One result (OBR with the test and a sodium beside it, as a chemistry panel reports)."""
    ts = hl7_time(at, tz)
    provider = _xcn(*ordering)
    order = f"ORD{control}"
    segments = [
        f"MSH|^~\\&|LAB|MAINHOSP|CARERELAY|MAINHOSP|{ts}||ORU^R01^ORU_R01|{control}|P|2.5.1",
        _pid(patient), f"PV1|1|I|{_location(bed)}||||{_attending(patient)}",
        f"ORC|RE|{order}|FIL{control}|||||||||{provider}",
        f"OBR|1|{order}|FIL{control}|{test.code}^{test.text.upper()}^LN|||{ts}|||||||||{provider}||||||{ts}|||F",
        f"OBX|1|NM|{test.code}^{test.text}^LN||{value}|{test.units}|{test.reference}|{flag}|||F|||{ts}",
    ]
    return ("\r".join(segments) + "\r").encode()


def normal_value(rng: Random, test: Test) -> str:
    value = rng.uniform(test.low, test.high)
    return f"{value:.2f}" if test.high < 1 else f"{value:.1f}"


def wctp_submit(*, sender: str, security_code: str, recipient: str, text: str, message_id: str, priority: str,
                at: datetime, tz: ZoneInfo, choices: tuple[str, ...] = ()) -> bytes:
    """A WCTP 1.3 SubmitRequest: a multiple-choice message when there are choices, else alphanumeric."""
    stamp = at.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S")
    if choices:
        payload = (f"<wctp-MCR><wctp-Message>{escape(text)}</wctp-Message>"
                   + "".join(f"<wctp-Choice>{escape(c)}</wctp-Choice>" for c in choices) + "</wctp-MCR>")
    else:
        payload = f"<wctp-Alphanumeric>{escape(text)}</wctp-Alphanumeric>"
    return (f'<?xml version="1.0" encoding="UTF-8"?><wctp-Operation wctpVersion="wctp-dtd-v1r3">'
            f'<wctp-SubmitRequest><wctp-SubmitHeader submitTimestamp="{stamp}">'
            f'<wctp-Originator senderID="{escape(sender)}" securityCode="{escape(security_code)}"/>'
            f'<wctp-MessageControl messageID="{escape(message_id)}" allowResponse="true" notifyWhenDelivered="true" '
            f'deliveryPriority="{priority}"/><wctp-Recipient recipientID="{escape(recipient)}"/>'
            f"</wctp-SubmitHeader><wctp-Payload>{payload}</wctp-Payload></wctp-SubmitRequest>"
            f"</wctp-Operation>").encode()
