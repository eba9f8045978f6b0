"""Patients, encounters, locations and care teams from ADT; results and orders; the census.

Plain values in (the dataclasses below, filled by the HL7 adapter or anything else), rows out.
Every write and every read of patient data is audited in the caller's transaction.

A critical result, a STAT or consult order, or a presenting-patient rule match leaves a
``ClinicalHandoff`` row in the same transaction, with its target (who is to hear of it); the alerts
domain claims each one exactly once (``claim_handoffs``) and raises its alert.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from carerelay.audit.service import record
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import Conflict, Invalid, NotFound
from carerelay.core.prepared import PreparedLoad
from carerelay.directory.models import Person
from carerelay.directory.service import person_id_by
from carerelay.patients.models import (
    Bed,
    CareTeamMember,
    ClinicalHandoff,
    Encounter,
    EncounterStatus,
    HandoffKind,
    Observation,
    Order,
    Patient,
    Unit,
)

# ---------------------------------------------------------------- inputs (plain values)


@dataclass(frozen=True)
class ProviderRef:
    id: str
    family: str = ""
    given: str = ""
    prefix: str = ""
    id_type: str = ""  # assigning authority or identifier type (e.g. NPI)

    @property
    def name(self) -> str:
        given = f"{self.given} " if self.given else ""
        prefix = f"{self.prefix} " if self.prefix else ""
        return f"{prefix}{given}{self.family}".strip()


@dataclass(frozen=True)
class LocationRef:
    unit: str
    room: str = ""
    bed: str = ""
    facility: str = ""

    @property
    def text(self) -> str:
        return "^".join(p for p in (self.unit, self.room, self.bed) if p) or ""


@dataclass(frozen=True)
class Demographics:
    mrn: str
    family: str = ""
    given: str = ""
    middle: str = ""
    birth_date: date | None = None
    sex: str = ""


@dataclass(frozen=True)
class CareTeamEntry:
    role: str
    source: str  # PV1-7 … or ROL
    provider: ProviderRef | None  # None: the field was sent as "" (delete)
    role_text: str = ""
    action: str = "AD"  # ROL-2: AD add, UP update, DE delete, UC unchanged
    starts_at: datetime | None = None
    ends_at: datetime | None = None


ADT_EVENTS = ("A01", "A02", "A03", "A04", "A05", "A06", "A07", "A08", "A11", "A12", "A13", "A40")


@dataclass(frozen=True)
class AdtEvent:
    event: str
    patient: Demographics
    event_at: datetime
    visit_number: str = ""
    patient_class: str = ""
    location: LocationRef | None = None
    admitted_at: datetime | None = None
    discharged_at: datetime | None = None
    care_team: Sequence[CareTeamEntry] = ()
    # PV1 sources present in the message: an empty field there means "no change", "" means remove.
    merge_prior_mrn: str = ""
    source_message_id: int | None = None


@dataclass(frozen=True)
class ObservationIn:
    code: str
    text: str = ""
    coding_system: str = ""
    set_id: str = ""
    value_type: str = ""
    value: str = ""
    units: str = ""
    reference_range: str = ""
    abnormal_flags: tuple[str, ...] = ()
    result_status: str = ""
    observed_at: datetime | None = None
    notes: str = ""


@dataclass(frozen=True)
class ResultGroup:
    """One OBR and its OBX segments."""

    placer_order: str = ""
    filler_order: str = ""
    panel_code: str = ""
    panel_text: str = ""
    ordering: ProviderRef | None = None
    observations: Sequence[ObservationIn] = ()


@dataclass(frozen=True)
class ResultReport:
    patient: Demographics
    groups: Sequence[ResultGroup]
    visit_number: str = ""
    source_message_id: int | None = None


@dataclass(frozen=True)
class CriticalRule:
    """Critical when the numeric value is below ``below`` or above ``above`` (either may be None)."""

    code: str
    below: float | None = None
    above: float | None = None


ORDERING = "ordering"


@dataclass(frozen=True)
class HandoffRouting:
    """Who hears of a critical result, a STAT order or a consult order.

    A target is ``ordering`` (the ordering provider: the default, as before routing was
    configurable), ``careteam:<role>`` (that role on this patient's care team, e.g. the attending)
    or any routing address (``role:…``, ``group:…``, ``pager:…``); a comma-separated list is tried in
    order, the first that reaches someone at that moment wins. ``by_code`` overrides the target per
    test (OBX-3) or order (OBR-4) code; ``consult_orders`` lists the order codes that are consults,
    each with its target.
    """

    critical_result: str = ORDERING
    stat_order: str = ORDERING
    by_code: Mapping[str, str] = field(default_factory=dict)
    consult_orders: Mapping[str, str] = field(default_factory=dict)

    def target_for(self, kind: str, code: str) -> str:
        if code and code in self.by_code:
            return self.by_code[code]
        return self.critical_result if kind == HandoffKind.CRITICAL_RESULT else self.stat_order


@dataclass(frozen=True)
class ResultPolicy:
    critical_flags: frozenset[str] = frozenset({"HH", "LL", "AA"})
    rules: Sequence[CriticalRule] = ()
    provider_fields: Sequence[str] = ("npi", "unique_id", "ehr_username", "epic_ser_id")
    routing: HandoffRouting = field(default_factory=HandoffRouting)


@dataclass(frozen=True)
class OrderIn:
    patient: Demographics
    control: str = ""
    placer_order: str = ""
    filler_order: str = ""
    code: str = ""
    text: str = ""
    priorities: tuple[str, ...] = ()  # every priority the message states (ORC-7, OBR-5, OBR-27, TQ1-9)
    ordering: ProviderRef | None = None
    ordered_at: datetime | None = None
    visit_number: str = ""
    source_message_id: int | None = None


@dataclass
class AdtOutcome:
    patient_id: int
    encounter_id: int | None
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- helpers


MATCHES_KEY = "patients_provider_matches"


@contextmanager
def provider_matches_remembered(session: Session) -> Iterator[None]:
    """Inside the block, each provider id is looked up in the directory once, not once per message.

    For a batch of messages applied in one transaction (the HL7 processor). Nothing applied from a
    message writes people, so what the first lookup found stays true for the rest of the batch.
    """
    session.info[MATCHES_KEY] = {}
    try:
        yield
    finally:
        session.info.pop(MATCHES_KEY, None)


def match_person(session: Session, ref: ProviderRef | None, fields: Sequence[str]) -> int | None:
    """The directory person an HL7 provider id names: NPI-typed ids on npi only, else each field in order."""
    if ref is None or not ref.id:
        return None
    tried = ("npi",) if ref.id_type.upper() == "NPI" else tuple(fields)
    memo: dict[tuple[str, tuple[str, ...]], int | None] | None = session.info.get(MATCHES_KEY)
    if memo is not None and (ref.id, tried) in memo:
        return memo[(ref.id, tried)]
    found = None
    for name in tried:
        found = person_id_by(session=session, field=name, value=ref.id)
        if found is not None:
            break
    if memo is not None:
        memo[(ref.id, tried)] = found
    return found


# Built once (every message looks up its patient and encounter): no construction per call.
_PATIENT_BY_MRN = select(Patient).where(Patient.mrn == bindparam("mrn"))
_ENCOUNTER_BY_VISIT = (select(Encounter).where(Encounter.patient_id == bindparam("patient_id"),
                                               Encounter.visit_number == bindparam("visit_number"))
                       .order_by(Encounter.id.desc()).limit(1))
_LATEST_ENCOUNTER = (select(Encounter).where(Encounter.patient_id == bindparam("patient_id"),
                                             Encounter.status != EncounterStatus.CANCELLED)
                     .order_by(Encounter.id.desc()).limit(1))


def _patient_by_mrn(session: Session, mrn: str) -> Patient | None:
    patient = session.execute(_PATIENT_BY_MRN, {"mrn": mrn}).scalar_one_or_none()
    seen = 0
    while patient is not None and patient.merged_into_id is not None and seen < 10:
        patient = session.get(Patient, patient.merged_into_id)
        seen += 1
    return patient


def upsert_patient(*, session: Session, clock: Clock, demographics: Demographics) -> Patient:
    if not demographics.mrn:
        raise Invalid("the patient has no MRN (PID-3)", field="PID-3")
    patient = _patient_by_mrn(session, demographics.mrn)
    now = clock.now()
    if patient is None:
        patient = Patient(mrn=demographics.mrn, created_at=now, updated_at=now)
        session.add(patient)
    for attr, value in (("family_name", demographics.family), ("given_name", demographics.given),
                        ("middle_name", demographics.middle), ("sex", demographics.sex)):
        if value:
            setattr(patient, attr, "" if value == '""' else value)
    if demographics.birth_date is not None:
        patient.birth_date = demographics.birth_date
    patient.updated_at = now
    session.flush()
    return patient


def _resolve_location(session: Session, loc: LocationRef | None) -> tuple[int | None, int | None, list[str]]:
    if loc is None or not loc.unit:
        return None, None, []
    from carerelay.directory.models import Site

    units = list(session.execute(select(Unit).where(Unit.code == loc.unit).order_by(Unit.id)).scalars())
    if loc.facility and len(units) > 1:
        site_ids = set(session.execute(select(Site.id).where(Site.code == loc.facility)).scalars())
        units = [u for u in units if u.site_id in site_ids] or units
    if not units:
        return None, None, [f"unknown unit {loc.unit!r} (kept as text {loc.text!r})"]
    unit = units[0]
    if not loc.room and not loc.bed:
        return unit.id, None, []
    bed = session.execute(select(Bed).where(Bed.unit_id == unit.id, Bed.room == loc.room,
                                            Bed.bed == loc.bed)).scalar_one_or_none()
    if bed is None:
        return unit.id, None, [f"unknown bed {loc.text!r} on unit {loc.unit} (unit kept, bed as text)"]
    return unit.id, bed.id, []


def _current_encounter(session: Session, patient_id: int, visit_number: str) -> Encounter | None:
    if visit_number:
        found = session.execute(_ENCOUNTER_BY_VISIT, {"patient_id": patient_id, "visit_number": visit_number})
    else:
        found = session.execute(_LATEST_ENCOUNTER, {"patient_id": patient_id})
    return found.scalar_one_or_none()


def _set_location(session: Session, enc: Encounter, loc: LocationRef | None, *, transfer: bool,
                  notes: list[str]) -> None:
    if loc is None or not loc.unit:
        return
    unit_id, bed_id, warnings = _resolve_location(session, loc)
    notes.extend(warnings)
    if transfer:
        enc.prior_unit_id, enc.prior_bed_id, enc.prior_location = enc.unit_id, enc.bed_id, enc.location
    enc.unit_id, enc.bed_id, enc.location = unit_id, bed_id, loc.text


def _sync_care_team(session: Session, clock: Clock, enc: Encounter, entries: Sequence[CareTeamEntry],
                    fields: Sequence[str]) -> None:
    now = clock.now()
    members = list(session.execute(select(CareTeamMember).where(CareTeamMember.encounter_id == enc.id,
                                                                CareTeamMember.active.is_(True))).scalars())
    pv1_sources = {e.source for e in entries if e.source != "ROL"}
    wanted: dict[tuple[str, str, str], CareTeamEntry] = {}
    for entry in entries:
        if entry.source != "ROL" and entry.provider is not None:
            wanted[(entry.source, entry.role, entry.provider.id or entry.provider.name)] = entry
    # PV1 fields sent in this message replace what the same field said before.
    for member in members:
        if member.source in pv1_sources and (member.source, member.role,
                                             member.provider_id or member.provider_name) not in wanted:
            member.active, member.ends_at, member.updated_at = False, now, now
    existing = {(m.source, m.role, m.provider_id or m.provider_name): m for m in members if m.active}
    for key, entry in wanted.items():
        if key not in existing:
            _add_member(session, enc, entry, fields, now)
    for entry in entries:
        if entry.source != "ROL" or entry.provider is None:
            continue
        key = ("ROL", entry.role, entry.provider.id or entry.provider.name)
        current = existing.get(key)
        if entry.action == "DE":
            if current is not None:
                current.active, current.ends_at, current.updated_at = False, entry.ends_at or now, now
        elif current is None:
            _add_member(session, enc, entry, fields, now)
        else:
            current.starts_at = entry.starts_at or current.starts_at
            current.ends_at = entry.ends_at or current.ends_at
            current.updated_at = now


def _add_member(session: Session, enc: Encounter, entry: CareTeamEntry, fields: Sequence[str],
                now: datetime) -> None:
    assert entry.provider is not None
    session.add(CareTeamMember(
        encounter_id=enc.id, role=entry.role, role_text=entry.role_text, source=entry.source,
        person_id=match_person(session, entry.provider, fields), provider_id=entry.provider.id,
        provider_id_type=entry.provider.id_type, provider_name=entry.provider.name,
        starts_at=entry.starts_at, ends_at=entry.ends_at, active=True, updated_at=now))


def _end_care_team(session: Session, enc: Encounter, now: datetime) -> None:
    session.execute(update(CareTeamMember).where(CareTeamMember.encounter_id == enc.id,
                                                 CareTeamMember.active.is_(True))
                    .values(active=False, ends_at=now, updated_at=now))


# ---------------------------------------------------------------- ADT


def apply_adt(*, session: Session, clock: Clock, actor: Actor, event: AdtEvent,
              provider_fields: Sequence[str] = ("npi", "unique_id", "ehr_username", "epic_ser_id")) -> AdtOutcome:
    """Apply one ADT event. Cancels (A11, A12, A13) undo what the event they cancel did."""
    if event.event not in ADT_EVENTS:
        raise Invalid(f"ADT event {event.event} is not handled", field="MSH-9")
    now = clock.now()
    if event.event == "A40":
        return _merge(session=session, clock=clock, actor=actor, event=event)
    patient = upsert_patient(session=session, clock=clock, demographics=event.patient)
    outcome = AdtOutcome(patient_id=patient.id, encounter_id=None)
    enc = _current_encounter(session, patient.id, event.visit_number)
    creating = event.event in ("A01", "A04", "A05")
    if enc is None or (creating and not event.visit_number
                       and enc.status in (EncounterStatus.DISCHARGED, EncounterStatus.CANCELLED)):
        if event.event in ("A11", "A12", "A13"):
            outcome.notes.append(f"{event.event}: no encounter to cancel for MRN {event.patient.mrn}")
            _audit_adt(session, clock, actor, event, patient, None, outcome)
            return outcome
        enc = Encounter(patient_id=patient.id, visit_number=event.visit_number or None, status=EncounterStatus.ACTIVE,
                        updated_at=now)
        if event.event == "A05":
            enc.status = EncounterStatus.PREADMIT
        session.add(enc)
        session.flush()
    if event.patient_class:
        enc.patient_class = event.patient_class
    match event.event:
        case "A01" | "A04" | "A06" | "A07":
            enc.status = EncounterStatus.ACTIVE
            enc.admitted_at = event.admitted_at or enc.admitted_at or event.event_at
            enc.discharged_at = None
            _set_location(session, enc, event.location, transfer=False, notes=outcome.notes)
        case "A05":
            if enc.status != EncounterStatus.ACTIVE:
                enc.status = EncounterStatus.PREADMIT
            _set_location(session, enc, event.location, transfer=False, notes=outcome.notes)
        case "A08":
            _set_location(session, enc, event.location, transfer=False, notes=outcome.notes)
        case "A02":
            if enc.status != EncounterStatus.ACTIVE:
                outcome.notes.append(f"A02 for an encounter that is {enc.status}")
            enc.status = EncounterStatus.ACTIVE
            _set_location(session, enc, event.location, transfer=True, notes=outcome.notes)
        case "A03":
            enc.status = EncounterStatus.DISCHARGED
            enc.discharged_at = event.discharged_at or event.event_at
        case "A11":
            enc.status = EncounterStatus.CANCELLED
            _end_care_team(session, enc, now)
        case "A12":
            if enc.prior_location or enc.prior_unit_id is not None:
                enc.unit_id, enc.bed_id, enc.location = enc.prior_unit_id, enc.prior_bed_id, enc.prior_location
                enc.prior_unit_id, enc.prior_bed_id, enc.prior_location = None, None, ""
            else:
                outcome.notes.append("A12: no transfer on record to cancel")
        case "A13":
            if enc.status == EncounterStatus.DISCHARGED:
                enc.status, enc.discharged_at = EncounterStatus.ACTIVE, None
            else:
                outcome.notes.append(f"A13: encounter was {enc.status}, not discharged")
    if event.event not in ("A11", "A12", "A13", "A03") and event.care_team:
        _sync_care_team(session, clock, enc, event.care_team, provider_fields)
    enc.updated_at = now
    session.flush()
    outcome.encounter_id = enc.id
    _audit_adt(session, clock, actor, event, patient, enc, outcome)
    return outcome


def _audit_adt(session: Session, clock: Clock, actor: Actor, event: AdtEvent, patient: Patient,
               enc: Encounter | None, outcome: AdtOutcome) -> None:
    record(session=session, clock=clock, actor=actor, action=f"patient.adt.{event.event}", object_type="patient",
           object_id=patient.id, detail={"mrn": patient.mrn, "encounter_id": enc.id if enc else None,
                                         "hl7_message_id": event.source_message_id, "notes": outcome.notes})


def _merge(*, session: Session, clock: Clock, actor: Actor, event: AdtEvent) -> AdtOutcome:
    survivor = upsert_patient(session=session, clock=clock, demographics=event.patient)
    outcome = AdtOutcome(patient_id=survivor.id, encounter_id=None)
    if not event.merge_prior_mrn:
        raise Invalid("A40 without a prior patient id (MRG-1)", field="MRG-1")
    prior = session.execute(select(Patient).where(Patient.mrn == event.merge_prior_mrn)).scalar_one_or_none()
    if prior is None or prior.id == survivor.id:
        outcome.notes.append(f"A40: prior MRN {event.merge_prior_mrn} unknown or already merged")
    else:
        for model in (Encounter, Observation, Order, ClinicalHandoff):
            session.execute(update(model).where(model.patient_id == prior.id).values(patient_id=survivor.id))
        prior.merged_into_id = survivor.id
        prior.updated_at = clock.now()
        session.flush()
    record(session=session, clock=clock, actor=actor, action="patient.adt.A40", object_type="patient",
           object_id=survivor.id, detail={"mrn": survivor.mrn, "prior_mrn": event.merge_prior_mrn,
                                          "hl7_message_id": event.source_message_id, "notes": outcome.notes})
    return outcome


# ---------------------------------------------------------------- results and orders


def _numeric(value: str) -> float | None:
    match = re.fullmatch(r"\s*[<>]?=?\s*(-?\d+(?:\.\d+)?)\s*", value)
    return float(match.group(1)) if match else None


def critical_reason(obs: ObservationIn, policy: ResultPolicy) -> str:
    """Why this observation is critical ("" when it is not): an OBX-8 flag or a lab rule."""
    flags = [f for f in obs.abnormal_flags if f.upper() in policy.critical_flags]
    if flags:
        return f"abnormal flag {flags[0]}"
    number = _numeric(obs.value)
    if number is None:
        return ""
    for rule in policy.rules:
        if rule.code != obs.code:
            continue
        if rule.below is not None and number < rule.below:
            return f"value {obs.value} below {rule.below:g} (rule for {rule.code})"
        if rule.above is not None and number > rule.above:
            return f"value {obs.value} above {rule.above:g} (rule for {rule.code})"
    return ""


@dataclass(frozen=True)
class RecordedObservation:
    """What the caller learns of a stored observation (the row itself is not loaded back)."""

    code: str
    critical: bool
    critical_reason: str


_OBSERVATIONS = cast(Table, Observation.__table__)
# Built once: a result report is stored for every ORU a lab sends. A report without a critical value
# is one executemany; otherwise rows go one by one, as a critical row's id is its hand-off's subject.
_INSERT_OBSERVATION = insert(_OBSERVATIONS)
_INSERT_CRITICAL = insert(_OBSERVATIONS).returning(_OBSERVATIONS.c.id)


def record_results(*, session: Session, clock: Clock, actor: Actor, report: ResultReport,
                   policy: ResultPolicy, routing: HandoffRouting | None = None) -> list[RecordedObservation]:
    """Store every observation; mark critical ones and leave a hand-off for each (same transaction),
    addressed as ``routing`` (default: the policy's) says for the test's code."""
    routing = routing or policy.routing
    patient = upsert_patient(session=session, clock=clock, demographics=report.patient)
    enc = _current_encounter(session, patient.id, report.visit_number)
    now = clock.now()
    rows: list[dict[str, object]] = []
    stored: list[RecordedObservation] = []
    for group in report.groups:
        person_id = match_person(session, group.ordering, policy.provider_fields)
        for obs in group.observations:
            reason = critical_reason(obs, policy)
            rows.append(dict(
                patient_id=patient.id, encounter_id=enc.id if enc else None,
                source_message_id=report.source_message_id, placer_order=group.placer_order,
                filler_order=group.filler_order, panel_code=group.panel_code, panel_text=group.panel_text,
                set_id=obs.set_id, value_type=obs.value_type, code=obs.code, text=obs.text,
                coding_system=obs.coding_system, value=obs.value, units=obs.units,
                reference_range=obs.reference_range, abnormal_flags="~".join(obs.abnormal_flags),
                result_status=obs.result_status, observed_at=obs.observed_at,
                ordering_provider_id=group.ordering.id if group.ordering else "",
                ordering_provider_name=group.ordering.name if group.ordering else "",
                ordering_person_id=person_id, notes=obs.notes, critical=bool(reason), critical_reason=reason,
                received_at=now))
            stored.append(RecordedObservation(obs.code, bool(reason), reason))
    conn = session.connection()
    if not any(r["critical"] for r in rows):
        if rows:
            conn.execute(_INSERT_OBSERVATION, rows)
        rows = []  # nothing to hand off
    for row in rows:  # in OBX order, so ids keep the report's order
        if not row["critical"]:
            conn.execute(_INSERT_OBSERVATION, row)
            continue
        observation_id = conn.execute(_INSERT_CRITICAL, row).scalar_one()
        summary = (f"Critical {row['text'] or row['code']} {row['value']} {row['units']} "
                   f"(range {row['reference_range'] or '-'}, {row['critical_reason']}) for MRN {patient.mrn}")
        session.add(ClinicalHandoff(
            kind=HandoffKind.CRITICAL_RESULT, patient_id=patient.id, encounter_id=row["encounter_id"],
            subject_type="observation", subject_id=observation_id, recipient_person_id=row["ordering_person_id"],
            recipient_provider_id=row["ordering_provider_id"], summary=summary[:500],
            target=routing.target_for(HandoffKind.CRITICAL_RESULT, str(row["code"])),
            detail={"code": row["code"]}, created_at=now))
    session.flush()
    record(session=session, clock=clock, actor=actor, action="patient.results", object_type="patient",
           object_id=patient.id, detail={"mrn": patient.mrn, "observations": len(stored),
                                         "critical": sum(1 for r in stored if r.critical),
                                         "hl7_message_id": report.source_message_id})
    return stored


NEW_ORDER_CONTROLS = ("NW", "SN", "XO", "")


def record_order(*, session: Session, clock: Clock, actor: Actor, order: OrderIn, stat_priorities: Sequence[str],
                 provider_fields: Sequence[str], routing: HandoffRouting | None = None) -> Order:
    """Store the order. A new consult order (its code in ``routing.consult_orders``) or a new STAT
    order leaves a hand-off for its target; a consult that is also STAT is one hand-off, marked STAT."""
    routing = routing or HandoffRouting()
    patient = upsert_patient(session=session, clock=clock, demographics=order.patient)
    enc = _current_encounter(session, patient.id, order.visit_number)
    now = clock.now()
    wanted = {p.upper() for p in stat_priorities}
    stated = [p for p in order.priorities if p]
    is_stat = any(p.upper() in wanted for p in stated)
    row = Order(patient_id=patient.id, encounter_id=enc.id if enc else None, source_message_id=order.source_message_id,
                control=order.control, placer_order=order.placer_order, filler_order=order.filler_order,
                code=order.code, text=order.text, priority=(stated[0] if stated else "")[:20], stat=is_stat,
                ordering_provider_id=order.ordering.id if order.ordering else "",
                ordering_provider_name=order.ordering.name if order.ordering else "",
                ordering_person_id=match_person(session, order.ordering, provider_fields),
                ordered_at=order.ordered_at, received_at=now)
    session.add(row)
    session.flush()
    consult = routing.consult_orders.get(row.code) if row.code else None
    new = order.control in NEW_ORDER_CONTROLS
    if new and (consult is not None or is_stat):
        what = f"{'STAT ' if is_stat else ''}{'consult' if consult is not None else 'order'}"
        session.add(ClinicalHandoff(
            kind=HandoffKind.CONSULT_ORDER if consult is not None else HandoffKind.STAT_ORDER,
            patient_id=patient.id, encounter_id=row.encounter_id, subject_type="order",
            subject_id=row.id, recipient_person_id=row.ordering_person_id,
            recipient_provider_id=row.ordering_provider_id,
            summary=f"{what[0].upper()}{what[1:]} {row.text or row.code} ({row.placer_order}) for MRN "
                    f"{patient.mrn}"[:500],
            target=consult if consult is not None else routing.target_for(HandoffKind.STAT_ORDER, row.code),
            detail={"code": row.code, "stat": is_stat, "ordering": row.ordering_provider_name}, created_at=now))
        session.flush()
    record(session=session, clock=clock, actor=actor, action="patient.order", object_type="patient",
           object_id=patient.id, detail={"mrn": patient.mrn, "order_id": row.id, "stat": is_stat,
                                         "consult": consult is not None,
                                         "hl7_message_id": order.source_message_id})
    return row


# ---------------------------------------------------------------- the hook for the alerts domain


def add_handoff(*, session: Session, clock: Clock, kind: str, patient_id: int, encounter_id: int | None,
                subject_type: str, subject_id: int, summary: str, target: str,
                detail: dict[str, object]) -> ClinicalHandoff | None:
    """A hand-off for anything other than a result or an order (a presenting-patient rule match).
    A subject that already left one of this kind with the same ``detail["rule"]`` leaves no second
    (a reprocessed message notifies nobody twice); returns None then."""
    earlier = session.execute(select(ClinicalHandoff.detail).where(
        ClinicalHandoff.kind == kind, ClinicalHandoff.subject_type == subject_type,
        ClinicalHandoff.subject_id == subject_id)).scalars()
    if any(d.get("rule") == detail.get("rule") for d in earlier):
        return None
    row = ClinicalHandoff(kind=kind, patient_id=patient_id, encounter_id=encounter_id, subject_type=subject_type,
                          subject_id=subject_id, recipient_person_id=None, recipient_provider_id="",
                          summary=summary[:500], target=target[:300], detail=detail, created_at=clock.now())
    session.add(row)
    session.flush()
    return row


def pending_handoffs(*, session: Session, kind: str | None = None, limit: int = 100) -> list[ClinicalHandoff]:
    """Critical results and STAT orders nobody has claimed yet, oldest first."""
    query = select(ClinicalHandoff).where(ClinicalHandoff.claimed_at.is_(None))
    if kind:
        query = query.where(ClinicalHandoff.kind == kind)
    return list(session.execute(query.order_by(ClinicalHandoff.id).limit(limit)).scalars())


def claim_handoffs(*, session: Session, clock: Clock, consumer: str, kinds: Sequence[str] = (),
                   limit: int = 100) -> list[ClinicalHandoff]:
    """For the alerts domain: take pending hand-offs (each exactly once, SKIP LOCKED on PostgreSQL)
    and mark them claimed in the caller's transaction, which should also start the alert."""
    query = select(ClinicalHandoff).where(ClinicalHandoff.claimed_at.is_(None))
    if kinds:
        query = query.where(ClinicalHandoff.kind.in_(list(kinds)))
    query = query.order_by(ClinicalHandoff.id).limit(limit).with_for_update(skip_locked=True)
    rows = list(session.execute(query).scalars())
    now = clock.now()
    for row in rows:
        row.claimed_at, row.claimed_by = now, consumer[:60]
    session.flush()
    return rows


# ---------------------------------------------------------------- reads (audited)


@dataclass(frozen=True)
class CensusRow:
    patient_id: int
    mrn: str
    name: str
    encounter_id: int
    patient_class: str
    room: str
    bed: str
    location: str
    admitted_at: datetime | None
    attending: str


def _display(p: Patient) -> str:
    return f"{p.family_name}, {p.given_name}".strip(", ")


def census(*, session: Session, clock: Clock, actor: Actor, unit_code: str) -> tuple[Unit, list[CensusRow]]:
    """Patients with an active encounter on this unit, by room and bed."""
    unit = session.execute(select(Unit).where(Unit.code == unit_code).order_by(Unit.id).limit(1)).scalar_one_or_none()
    if unit is None:
        raise NotFound(f"no unit {unit_code!r}")
    rows = session.execute(
        select(Encounter, Patient, Bed).join(Patient, Patient.id == Encounter.patient_id)
        .outerjoin(Bed, Bed.id == Encounter.bed_id)
        .where(Encounter.unit_id == unit.id, Encounter.status == EncounterStatus.ACTIVE)
    ).all()
    enc_ids = [e.id for e, _, _ in rows]
    attending: dict[int, str] = {}
    if enc_ids:
        for m, person in session.execute(
            select(CareTeamMember, Person).outerjoin(Person, Person.id == CareTeamMember.person_id)
            .where(CareTeamMember.encounter_id.in_(enc_ids), CareTeamMember.active.is_(True),
                   CareTeamMember.role == "attending")
        ).all():
            attending[m.encounter_id] = person.display_name if person else m.provider_name
    out = [CensusRow(patient_id=p.id, mrn=p.mrn, name=_display(p), encounter_id=e.id, patient_class=e.patient_class,
                     room=b.room if b else "", bed=b.bed if b else "", location=e.location,
                     admitted_at=e.admitted_at, attending=attending.get(e.id, "")) for e, p, b in rows]
    out.sort(key=lambda r: (r.room, r.bed, r.mrn))
    record(session=session, clock=clock, actor=actor, action="patient.census.read", object_type="unit",
           object_id=unit.id, detail={"unit": unit.code, "patients": len(out)})
    return unit, out


def access_patient(*, session: Session, clock: Clock, actor: Actor, patient_id: int | None = None,
                   mrn: str | None = None) -> tuple[Patient, Encounter | None]:
    """A patient (a merged MRN leads to the survivor) and their current encounter, audited."""
    patient = session.get(Patient, patient_id) if patient_id is not None else (
        _patient_by_mrn(session, mrn) if mrn else None)
    if patient is None:
        raise NotFound("no such patient")
    enc = _current_encounter(session, patient.id, "")
    record(session=session, clock=clock, actor=actor, action="patient.read", object_type="patient",
           object_id=patient.id, detail={"mrn": patient.mrn})
    return patient, enc


@dataclass(frozen=True)
class CareTeamRow:
    role: str
    role_text: str
    source: str
    person_id: int | None
    person_name: str | None
    provider_id: str
    provider_name: str
    starts_at: datetime | None
    ends_at: datetime | None


def care_team(*, session: Session, clock: Clock, actor: Actor, patient_id: int) -> list[CareTeamRow]:
    """The active care team of the patient's current encounter, audited."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("no such patient")
    enc = _current_encounter(session, patient.id, "")
    rows: list[CareTeamRow] = []
    if enc is not None:
        for m, person in session.execute(
            select(CareTeamMember, Person).outerjoin(Person, Person.id == CareTeamMember.person_id)
            .where(CareTeamMember.encounter_id == enc.id, CareTeamMember.active.is_(True))
            .order_by(CareTeamMember.id)
        ).all():
            rows.append(CareTeamRow(role=m.role, role_text=m.role_text, source=m.source, person_id=m.person_id,
                                    person_name=person.display_name if person else None, provider_id=m.provider_id,
                                    provider_name=m.provider_name, starts_at=m.starts_at, ends_at=m.ends_at))
    record(session=session, clock=clock, actor=actor, action="patient.care_team.read", object_type="patient",
           object_id=patient.id, detail={"members": len(rows)})
    return rows


def list_observations(*, session: Session, clock: Clock, actor: Actor, patient_id: int,
                      critical_only: bool = False, limit: int = 200) -> list[Observation]:
    query = select(Observation).where(Observation.patient_id == patient_id)
    if critical_only:
        query = query.where(Observation.critical.is_(True))
    rows = list(session.execute(query.order_by(Observation.id.desc()).limit(limit)).scalars())
    record(session=session, clock=clock, actor=actor, action="patient.results.read", object_type="patient",
           object_id=patient_id, detail={"results": len(rows)})
    return rows


def register_patient(*, session: Session, clock: Clock, actor: Actor, demographics: Demographics) -> Patient:
    """A patient entered by hand (before, or without, an ADT feed); an existing MRN is a conflict."""
    if _patient_by_mrn(session, demographics.mrn) is not None:
        raise Conflict(f"a patient with MRN {demographics.mrn} already exists", field="mrn")
    patient = upsert_patient(session=session, clock=clock, demographics=demographics)
    record(session=session, clock=clock, actor=actor, action="patient.create", object_type="patient",
           object_id=patient.id, detail={"mrn": demographics.mrn, "source": "api"})
    return patient


# ---------------------------------------------------------------- for routing (system reads)
# Routing resolves "the attending of this patient" for the system, not for a person, so these reads
# are not audited here: the alert or message that uses them is audited with the resolution in it.


def find_patient(*, session: Session, ref: str) -> Patient | None:
    """A patient by id or by MRN, following merges to the surviving record."""
    patient = _patient_by_mrn(session, ref)
    if patient is None and ref.isdigit():
        patient = session.get(Patient, int(ref))
    return patient


def current_care_team(*, session: Session, patient_id: int, role: str) -> list[CareTeamMember]:
    """Active members of the patient's current encounter in a role: a PV1 role (attending, …), a ROL
    code (RN) or words of the role's text ("nurse" matches "Primary Nurse")."""
    wanted = role.strip().lower()
    rows = session.execute(
        select(CareTeamMember).join(Encounter, Encounter.id == CareTeamMember.encounter_id)
        .where(Encounter.patient_id == patient_id, Encounter.status == EncounterStatus.ACTIVE,
               CareTeamMember.active.is_(True))
        .order_by(CareTeamMember.id)
    ).scalars()
    return [m for m in rows if m.role.lower() == wanted or wanted in m.role_text.lower().split()]


# Built once: every nurse-call alert asks, and building a statement costs more than running this one.
_IN_BED = PreparedLoad(
    select(Patient).join(Encounter, Encounter.patient_id == Patient.id).join(Bed, Bed.id == Encounter.bed_id)
    .where(Encounter.status == EncounterStatus.ACTIVE, Bed.room == bindparam("room"), Bed.bed == bindparam("bed"),
           Bed.unit_id == select(Unit.id).where(Unit.code == bindparam("code")).order_by(Unit.id).limit(1)
           .scalar_subquery())
    .limit(1))


def patient_in_bed(*, session: Session, unit_code: str, room: str, bed: str) -> Patient | None:
    """Who is in the bed now, on the unit ``find_unit`` names by that code (one statement)."""
    patient: Patient | None = _IN_BED.first(session, {"code": unit_code, "room": room, "bed": bed})
    return patient


# ---------------------------------------------------------------- for staffing (system reads)
# Staff assignments name units and beds and look at which beds are occupied; like routing's reads
# these are not audited here (the staffing change or check that uses them is).


def find_unit(*, session: Session, code: str) -> Unit | None:
    return session.execute(select(Unit).where(Unit.code == code).order_by(Unit.id).limit(1)).scalar_one_or_none()


def create_unit(*, session: Session, clock: Clock, actor: Actor, site_id: int, department_id: int | None, code: str,
                name: str, rooms: Sequence[str], beds_per_room: Sequence[str]) -> Unit:
    """A unit and its beds, named as PV1-3 will name them; the ADT census then fills them."""
    if find_unit(session=session, code=code) is not None:
        raise Conflict(f"a unit with code {code!r} already exists", field="code")
    if not rooms or not beds_per_room:
        raise Invalid("a unit needs at least one room with one bed", field="rooms")
    unit = Unit(site_id=site_id, department_id=department_id, code=code, name=name)
    session.add(unit)
    session.flush()
    session.add_all(Bed(unit_id=unit.id, room=room, bed=bed) for room in rooms for bed in beds_per_room)
    session.flush()
    record(session=session, clock=clock, actor=actor, action="patients.create_unit", object_type="unit",
           object_id=unit.id, detail={"code": code, "beds": len(rooms) * len(beds_per_room)})
    return unit


def list_units(*, session: Session) -> list[Unit]:
    return list(session.execute(select(Unit).order_by(Unit.code, Unit.id)).scalars())


def find_bed(*, session: Session, unit_id: int, room: str, bed: str) -> Bed | None:
    return session.execute(select(Bed).where(Bed.unit_id == unit_id, Bed.room == room, Bed.bed == bed)
                           ).scalar_one_or_none()


def unit_beds(*, session: Session, unit_id: int) -> list[Bed]:
    return list(session.execute(select(Bed).where(Bed.unit_id == unit_id).order_by(Bed.room, Bed.bed)).scalars())


def occupied_beds(*, session: Session, unit_id: int) -> dict[int, int]:
    """bed id → patient id for every bed of the unit with an active encounter in it (the ADT census)."""
    rows = session.execute(select(Encounter.bed_id, Encounter.patient_id)
                           .where(Encounter.unit_id == unit_id, Encounter.status == EncounterStatus.ACTIVE,
                                  Encounter.bed_id.is_not(None))).all()
    return {bed_id: patient_id for bed_id, patient_id in rows if bed_id is not None}


def encounter_place(*, session: Session, encounter_id: int) -> tuple[bool, int | None, int | None] | None:
    """(active, unit id, bed id) of an encounter now; None when there is no such encounter."""
    enc = session.get(Encounter, encounter_id)
    if enc is None:
        return None
    return enc.status == EncounterStatus.ACTIVE, enc.unit_id, enc.bed_id


def find_bed_by_code(*, session: Session, unit_code: str, room: str, bed: str) -> tuple[Unit, Bed] | None:
    """A bed by unit code, room and bed (case as written on the unit's board); None if there is none."""
    found = session.execute(
        select(Unit, Bed).join(Bed, Bed.unit_id == Unit.id)
        .where(Unit.code == unit_code, Bed.room == room, Bed.bed == bed).order_by(Unit.id).limit(1)
    ).first()
    return (found[0], found[1]) if found is not None else None


@dataclass(frozen=True)
class ResultFacts:
    """What reports need of a result: its test, when it reached us, and the patient's unit."""

    observation_id: int
    code: str
    text: str
    received_at: datetime
    unit_code: str | None


def result_facts(*, session: Session, observation_ids: Sequence[int]) -> dict[int, ResultFacts]:
    """No patient identity leaves here: only the test, the time and the unit, for aggregate reports."""
    if not observation_ids:
        return {}
    rows = session.execute(
        select(Observation.id, Observation.code, Observation.text, Observation.received_at, Unit.code)
        .outerjoin(Encounter, Encounter.id == Observation.encounter_id)
        .outerjoin(Unit, Unit.id == Encounter.unit_id)
        .where(Observation.id.in_(sorted(set(observation_ids))))
    )
    return {oid: ResultFacts(oid, code, text, received_at, unit) for oid, code, text, received_at, unit in rows}
