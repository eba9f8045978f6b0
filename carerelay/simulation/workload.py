"""The simulated day, laid out before it starts: every ADT, result, nurse call, telemetry alarm, message
and charge nurse's board, at its instant. Seeded: the same seed, census and window give the same day.

The census is played forward here (who lies in which bed when), so every result, call and alarm names
a patient who is in that bed at that moment, as the system will know once it has taken the ADT in
order. Volumes scale with the census and the window from a 300-bed, 24-hour day: about 2,000 results
(2% critical), four nurse calls per occupied bed, alarms from the monitored beds (every ICU bed, a
quarter of the others) and about a thousand messages between clinicians. Each flow has at least one
item (and results at least one critical) whenever the window has any, so a short run still takes every
path. How busy each hour is follows the floor's day: labs peak before the morning round, discharges at
midday, messages in the day.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from random import Random
from zoneinfo import ZoneInfo

from carerelay.integrations.paging.demo import DEMO_SECURITY_CODE
from carerelay.simulation import census
from carerelay.simulation.census import Patient
from carerelay.simulation.hospital import NURSE_CALL_SENDER, BedRef, Clinician, Hospital
from carerelay.staffing.shifts import DEFAULT_CHANGES, change_instant, parse_changes

REFERENCE_BEDS = 300
BOARD_LEAD = timedelta(minutes=60)
"""The incoming charge nurse posts the board an hour before the change (the hand-over check runs at 30)."""
TELEMETRY_SENDER = "telemetry-central"
FLOWS = ("adt", "results", "critical_results", "nurse_calls", "telemetry", "messages")


@dataclass(frozen=True)
class Rates:
    occupancy: float = 0.85
    admissions_per_bed_day: float = 0.2
    transfers_per_bed_day: float = 0.08
    results_per_day: float = 2000.0
    critical_share: float = 0.02
    unknown_provider_share: float = 0.02
    nurse_calls_per_patient_day: float = 4.0
    monitored_share: float = 0.25
    alarms_per_monitored_day: float = 4.0
    lethal_share: float = 0.03
    messages_per_bed_day: float = 1000.0 / REFERENCE_BEDS
    needs_ack_share: float = 0.12


@dataclass(frozen=True)
class Hl7In:
    flow: str  # adt | results
    feed: str
    raw: bytes
    critical: bool = False


@dataclass(frozen=True)
class PageIn:
    flow: str  # nurse_calls | telemetry
    raw: bytes
    critical: bool = False


@dataclass(frozen=True)
class MessageIn:
    sender: Clinician
    address: str
    text: str
    priority: str
    needs_ack: bool
    mrn: str | None = None
    flow: str = "messages"


@dataclass(frozen=True)
class BoardIn:
    unit: str
    flow: str = "boards"


Item = Hl7In | PageIn | MessageIn | BoardIn


@dataclass(frozen=True)
class Event:
    at: datetime
    item: Item


@dataclass
class Stay:
    patient: Patient
    bed: BedRef
    starts_at: datetime
    ends_at: datetime | None = None

    def covers(self, at: datetime) -> bool:
        return self.starts_at + timedelta(minutes=1) <= at and (self.ends_at is None or at < self.ends_at)


@dataclass
class Workload:
    events: list[Event] = field(default_factory=list)
    shift_changes: list[tuple[str, datetime]] = field(default_factory=list)

    def count(self, flow: str) -> int:
        if flow == "critical_results":
            return sum(1 for e in self.events if isinstance(e.item, Hl7In) and e.item.critical)
        return sum(1 for e in self.events if e.item.flow == flow)


Profile = Callable[[int], float]


def _results(hour: int) -> float:
    return 3.0 if 4 <= hour < 7 else 1.5 if 7 <= hour < 11 else 1.0 if 11 <= hour < 21 else 0.5


def _admissions(hour: int) -> float:
    return 1.5 if 10 <= hour < 22 else 0.6


def _discharges(hour: int) -> float:
    return 2.0 if 10 <= hour < 18 else 0.5 if 18 <= hour < 21 else 0.05


def _calls(hour: int) -> float:
    return 1.2 if 7 <= hour < 22 else 0.6


def _messages(hour: int) -> float:
    return 1.5 if 8 <= hour < 19 else 0.8 if 19 <= hour < 23 else 0.3


def _flat(hour: int) -> float:
    return 1.0


def scaled(per_reference_day: float, beds: int, hours: float) -> int:
    return round(per_reference_day * beds / REFERENCE_BEDS * hours / 24)


def at_least_one(count: float, available: int) -> int:
    """A share of a flow, never zero while the flow has items: a short run still takes every path."""
    return min(available, max(1, round(count))) if available else 0


def local_day_or_night(at: datetime, tz: ZoneInfo) -> str:
    hour = at.astimezone(tz).hour
    return "day" if 7 <= hour < 19 else "night"


def nurse_call_sender(unit: str) -> str:
    return "nursecall-4w" if unit == "4W" else NURSE_CALL_SENDER


def senders_of(unit: str) -> tuple[str, str]:
    """Who pages about a unit's beds: its nurse-call server and the telemetry central station."""
    return nurse_call_sender(unit), TELEMETRY_SENDER


def shift_changes(unit_zone: str, start: datetime, end: datetime) -> list[datetime]:
    """The unit's changes in (start, end], built in local time by the staffing rule (DST included)."""
    tz = ZoneInfo(unit_zone)
    first, last = start.astimezone(tz).date() - timedelta(days=1), end.astimezone(tz).date() + timedelta(days=1)
    out = set()
    day = first
    while day <= last:
        for at in parse_changes(DEFAULT_CHANGES):
            instant = change_instant(day, at, tz)
            if start < instant <= end:
                out.add(instant)
        day += timedelta(days=1)
    return sorted(out)


class _Generator:
    def __init__(self, hospital: Hospital, start: datetime, hours: float, seed: int, rates: Rates) -> None:
        self.hospital, self.start, self.hours, self.rates = hospital, start, hours, rates
        self.end = start + timedelta(hours=hours)
        self.rng = Random(seed)
        self.tz = ZoneInfo(hospital.zone)
        self.stays: list[Stay] = []
        self.occupied: dict[BedRef, Stay] = {}
        self.patients = 0
        self.controls = 0
        self.out = Workload()

    def when(self, profile: Profile) -> datetime:
        span = (self.end - self.start).total_seconds()
        while True:
            at = self.start + timedelta(seconds=round(self.rng.random() * span))
            if self.rng.random() * 3.0 <= profile(at.astimezone(self.tz).hour):
                return at

    def times(self, count: int, profile: Profile) -> list[datetime]:
        return sorted(self.when(profile) for _ in range(count))

    def control(self, prefix: str) -> str:
        self.controls += 1
        return f"{prefix}{self.controls:07d}"

    def add(self, at: datetime, item: Item) -> None:
        self.out.events.append(Event(at, item))

    def new_patient(self, bed: BedRef) -> Patient:
        self.patients += 1
        return census.make_patient(self.rng, self.patients, self.rng.choice(self.hospital.attendings[bed.kind]))

    def adt(self, event: str, stay: Stay, at: datetime, prior: BedRef | None = None) -> None:
        raw = census.adt(event, patient=stay.patient, bed=stay.bed, at=at, tz=self.tz, control=self.control("ADT"),
                         admitted_at=self.admitted[stay.patient.mrn], prior=prior)
        self.add(at, Hl7In("adt", "adt", raw))

    # ------------------------------------------------------------ the census, played forward

    def play_census(self) -> None:
        beds = list(self.hospital.beds)
        rates = self.rates
        self.admitted: dict[str, datetime] = {}
        for bed in self.rng.sample(beds, round(len(beds) * rates.occupancy)):
            stay = Stay(self.new_patient(bed), bed, self.start)
            self.admitted[stay.patient.mrn] = self.start - timedelta(hours=self.rng.randint(2, 240))
            self.stays.append(stay)
            self.occupied[bed] = stay
            self.adt("A01", stay, self.start)
        moves = [(t, "A01") for t in self.times(scaled(rates.admissions_per_bed_day * REFERENCE_BEDS, len(beds),
                                                        self.hours), _admissions)]
        moves += [(t, "A03") for t in self.times(scaled(rates.admissions_per_bed_day * REFERENCE_BEDS, len(beds),
                                                         self.hours), _discharges)]
        moves += [(t, "A02") for t in self.times(scaled(rates.transfers_per_bed_day * REFERENCE_BEDS, len(beds),
                                                         self.hours), _flat)]
        for at, event in sorted(moves):
            free = [b for b in beds if b not in self.occupied]
            if event == "A01" and free:
                bed = self.rng.choice(free)
                stay = Stay(self.new_patient(bed), bed, at)
                self.admitted[stay.patient.mrn] = at
                self.stays.append(stay)
                self.occupied[bed] = stay
                self.adt("A01", stay, at)
            elif event == "A03":
                settled = [s for s in self.occupied.values() if s.starts_at + timedelta(hours=2) <= at]
                if settled:
                    stay = self.rng.choice(settled)
                    stay.ends_at = at
                    del self.occupied[stay.bed]
                    self.adt("A03", stay, at)
            elif event == "A02" and free and self.occupied:
                stay = self.rng.choice(list(self.occupied.values()))
                elsewhere = [b for b in free if b.unit != stay.bed.unit]
                if not elsewhere:
                    continue
                moved = Stay(stay.patient, self.rng.choice(elsewhere), at)
                stay.ends_at = at
                del self.occupied[stay.bed]
                self.occupied[moved.bed] = moved
                self.stays.append(moved)
                self.adt("A02", moved, at, prior=stay.bed)

    def stay_at(self, at: datetime, beds: set[BedRef] | None = None) -> Stay | None:
        found = [s for s in self.stays if s.covers(at) and (beds is None or s.bed in beds)]
        return self.rng.choice(found) if found else None

    # ------------------------------------------------------------ results, calls, alarms

    def results(self) -> None:
        rates = self.rates
        count = scaled(rates.results_per_day, len(self.hospital.beds), self.hours)
        critical = set(self.rng.sample(range(count), at_least_one(count * rates.critical_share, count)))
        for n, at in enumerate(self.times(count, _results)):
            stay = self.stay_at(at)
            if stay is None:
                continue
            test = self.rng.choice(census.TESTS)
            if n in critical:
                value, flag = self.rng.choice(test.critical)
                shown = f"{value:g}"
            else:
                shown, flag = census.normal_value(self.rng, test), "N"
            doctor = stay.patient.attending
            ordering = (census.UNKNOWN_PROVIDER if self.rng.random() < rates.unknown_provider_share
                        else (doctor.npi or "", doctor.family, doctor.given))
            raw = census.oru(patient=stay.patient, bed=stay.bed, at=at, tz=self.tz, control=self.control("LAB"),
                             test=test, value=shown, flag=flag, ordering=ordering)
            self.add(at, Hl7In("results", "lab", raw, critical=n in critical))

    def page(self, flow: str, at: datetime, sender: str, bed: BedRef, text: str, priority: str,
             choices: tuple[str, ...], critical: bool) -> None:
        message_id = self.control("NC" if flow == "nurse_calls" else "TM")
        raw = census.wctp_submit(sender=sender, security_code=DEMO_SECURITY_CODE, recipient=bed.code, text=text,
                                 message_id=message_id, priority=priority, at=at, tz=self.tz, choices=choices)
        self.add(at, PageIn(flow, raw, critical))

    def nurse_calls(self) -> None:
        kinds = (("BATHROOM CALL", "HIGH", 30), ("PATIENT CALL", "NORMAL", 35), ("PAIN CALL", "NORMAL", 15),
                 ("WATER REQUEST", "LOW", 12), ("BED EXIT ALARM", "HIGH", 8))
        count = scaled(self.rates.nurse_calls_per_patient_day * self.rates.occupancy * REFERENCE_BEDS,
                       len(self.hospital.beds), self.hours)
        for at in self.times(count, _calls):
            stay = self.stay_at(at)
            if stay is None:
                continue
            text, priority, _ = self.rng.choices(kinds, weights=[k[2] for k in kinds])[0]
            bed = stay.bed
            sender = nurse_call_sender(bed.unit)
            self.page("nurse_calls", at, sender, bed, f"{text} {bed.unit} {bed.room}-{bed.bed}", priority,
                      ("Accept", "Reject", "Call back"), priority == "HIGH")

    def telemetry(self) -> None:
        rates = self.rates
        monitored = {b for b in self.hospital.beds if b.kind == "icu" or self.rng.random() < rates.monitored_share}
        count = round(rates.alarms_per_monitored_day * len(monitored) * rates.occupancy * self.hours / 24)
        lethal = set(self.rng.sample(range(count), at_least_one(count * rates.lethal_share, count)))
        others = (("SPO2 LOW 86%", "HIGH"), ("HR HIGH 138", "NORMAL"), ("LEADS OFF", "LOW"), ("BRADY HR 38", "HIGH"))
        for n, at in enumerate(self.times(count, _flat)):
            stay = self.stay_at(at, monitored)
            if stay is None:
                continue
            bed = stay.bed
            if n in lethal:
                what, priority = self.rng.choice(("V-TACH HR 182", "V-FIB", "ASYSTOLE")), "HIGH"
            else:
                what, priority = self.rng.choice(others)
            self.page("telemetry", at, TELEMETRY_SENDER, bed, f"{what} {bed.unit} {bed.room}-{bed.bed}", priority,
                      (), n in lethal)

    # ------------------------------------------------------------ messages and boards

    def nurse_for(self, bed: BedRef, at: datetime) -> Clinician:
        kind = local_day_or_night(at, ZoneInfo(self.hospital.zones[bed.unit]))
        return self.hospital.team(bed.unit, kind).nurse_of(bed)

    def messages(self) -> None:
        texts = {
            "attending": ("Family is at the bedside and would like an update today.",
                          "Patient is asking when discharge is likely.", "BP trending down over the last hour, "
                          "please come and see the patient.", "Patient refusing the evening meds, asking for you."),
            "nurse": ("I am on my way up to see your patient in a few minutes.", "Family meeting moved to 15:00.",
                      "Can you update me after you reassess the patient?", "Patient may go home tomorrow morning."),
            "charge": ("Need a hand with a turn in my room, when you have a minute.", "Admission coming from ED "
                       "to my section, heads up.", "Break relief please when possible."),
            "role": ("New fever 38.9, patient looks comfortable, please call back.", "Patient with new chest "
                     "discomfort, ECG done, please come.", "Question about the plan for tonight, please call."),
        }
        kinds = (("attending", 35), ("nurse", 20), ("charge", 15), ("hospitalist", 15), ("cardiology", 15))
        count = scaled(self.rates.messages_per_bed_day * REFERENCE_BEDS, len(self.hospital.beds), self.hours)
        asks = set(self.rng.sample(range(count), at_least_one(count * self.rates.needs_ack_share, count)))
        for n, at in enumerate(self.times(count, _messages)):
            stay = self.stay_at(at)
            if stay is None:
                continue
            bed, mrn = stay.bed, stay.patient.mrn
            kind = self.rng.choices(kinds, weights=[k[1] for k in kinds])[0][0]
            if kind == "nurse":
                sender, address, text = stay.patient.attending, f"location:{bed.unit}/{bed.room}/{bed.bed}/nurse", \
                    self.rng.choice(texts["nurse"])
            elif kind == "charge":
                sender, address, text = self.nurse_for(bed, at), f"location:{bed.unit}/charge_nurse", \
                    self.rng.choice(texts["charge"])
            elif kind == "attending":
                sender, address, text = self.nurse_for(bed, at), f"careteam:{mrn}/attending", \
                    self.rng.choice(texts["attending"])
            else:
                role = "role:Hospitalist" if kind == "hospitalist" else "role:Cardiology On Call"
                sender, address, text = self.nurse_for(bed, at), role, self.rng.choice(texts["role"])
            needs_ack = n in asks
            priority = self.rng.choices(("routine", "urgent", "stat"), weights=(3, 5, 2))[0] if needs_ack \
                else "routine"
            self.add(at, MessageIn(sender, address, text, priority, needs_ack, mrn))

    def boards(self) -> None:
        for unit in self.hospital.units:
            for change in shift_changes(self.hospital.zones[unit], self.start, self.end):
                self.out.shift_changes.append((unit, change))
                self.add(max(self.start, change - BOARD_LEAD), BoardIn(unit))


def generate(*, hospital: Hospital, start: datetime, hours: float, seed: int, rates: Rates | None = None) -> Workload:
    gen = _Generator(hospital, start, hours, seed, rates or Rates())
    gen.play_census()
    gen.results()
    gen.nurse_calls()
    gen.telemetry()
    gen.messages()
    gen.boards()
    order = {"boards": 0, "adt": 1}
    gen.out.events.sort(key=lambda e: (e.at, order.get(e.item.flow, 2)))
    return gen.out


def hours_between(start: datetime, end: datetime) -> float:
    return math.ceil((end - start).total_seconds() / 3600)
