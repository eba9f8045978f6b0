"""Presenting-patient rules: "tell the hospitalists when a VIP is admitted", written by an analyst.

Rules live in a TOML file (``CARERELAY_HL7_PRESENTING_RULES_FILE``): Python reads TOML without any
extra package, and TOML keeps comments, so the file documents itself. Each ``[[rule]]`` names ADT
events and optional conditions — patient class (PV1-2), unit (PV1-3.1), feed, age from PID-7, and
any field of any segment (``"ZPV-1" = "VIP"``, ``"PV1-16" = ["V", "VIP"]``); all conditions must
hold. Values compare case-insensitively and take ``*`` and ``?`` wildcards.

A match leaves a ``presenting_patient`` hand-off in the processing transaction (so the alert is
never lost and never sent twice, even when the message is reprocessed); the alerts domain raises
it to the rule's ``notify`` target, or batches it into a digest every ``digest_minutes``.

A bad file stops start-up with one line naming the file, the rule and the key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.orm import Session

from carerelay.audit.service import record
from carerelay.config import ConfigError, Settings
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.integrations.hl7.feeds import check_target
from carerelay.integrations.hl7.parser import Parsed
from carerelay.patients import service as patients
from carerelay.patients.models import HandoffKind, Patient
from carerelay.patients.service import ADT_EVENTS, AdtEvent, AdtOutcome

SETTING = "CARERELAY_HL7_PRESENTING_RULES_FILE"
FIELD_PATH = re.compile(r"^([A-Z][A-Z0-9]{2})-(\d{1,3})(?:\.(\d{1,2}))?$")


@dataclass(frozen=True)
class FieldCondition:
    """``SEG-F`` (its first component) or ``SEG-F.C``: some repetition of it, in some segment of
    that name, matches one of the patterns."""

    path: str
    segment: str
    field: int
    component: int
    patterns: tuple[str, ...]

    def holds(self, parsed: Parsed) -> str | None:
        for seg in parsed.all(self.segment):
            for rep in range(1, max(1, seg.repetitions(self.field)) + 1):
                value = seg.get(self.field, self.component, rep=rep)
                if value and _matches(value, self.patterns):
                    return f"{self.path} = {value}"
        return None


def _matches(value: str, patterns: tuple[str, ...]) -> bool:
    folded = value.casefold()
    return any(fnmatchcase(folded, p) for p in patterns)


@dataclass(frozen=True)
class Facts:
    """What the rules look at, from the message and the patient as stored after applying it."""

    event: str
    feed: str
    patient_class: str
    unit: str
    location: str
    age: int | None


@dataclass(frozen=True)
class PresentingRule:
    name: str
    events: frozenset[str]
    notify: str
    priority: str = "urgent"
    digest_minutes: int = 0
    patient_class: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    feeds: tuple[str, ...] = ()
    min_age: int | None = None
    max_age: int | None = None
    fields: tuple[FieldCondition, ...] = ()

    def reasons(self, facts: Facts, parsed: Parsed) -> list[str] | None:
        """Why the rule matches (one phrase per condition), or None when it does not."""
        if facts.event not in self.events:
            return None
        why = [f"event {facts.event}"]
        for wanted, have, label in ((self.patient_class, facts.patient_class, "patient class"),
                                    (self.units, facts.unit, "unit"), (self.feeds, facts.feed, "feed")):
            if wanted:
                if not have or not _matches(have, wanted):
                    return None
                why.append(f"{label} {have}")
        if self.min_age is not None or self.max_age is not None:
            if facts.age is None:
                return None
            if (self.min_age is not None and facts.age < self.min_age) or (
                    self.max_age is not None and facts.age > self.max_age):
                return None
            why.append(f"age {facts.age}")
        for condition in self.fields:
            found = condition.holds(parsed)
            if found is None:
                return None
            why.append(found)
        return why


@dataclass(frozen=True)
class PresentingRules:
    rules: tuple[PresentingRule, ...] = ()
    source: str = ""


# ---------------------------------------------------------------- loading (one-line errors)


class _RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=100)
    events: list[str] = Field(min_length=1)
    notify: str = Field(min_length=3, max_length=300)
    priority: Literal["routine", "urgent", "stat", "critical"] = "urgent"
    digest_minutes: int = Field(default=0, ge=0, le=1440)
    patient_class: list[str] = Field(default_factory=list)
    units: list[str] = Field(default_factory=list)
    feeds: list[str] = Field(default_factory=list)
    min_age: int | None = Field(default=None, ge=0, le=150)
    max_age: int | None = Field(default=None, ge=0, le=150)
    fields: dict[str, str | list[str]] = Field(default_factory=dict)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        events = [e.strip().upper().removeprefix("ADT^") for e in value]
        unknown = [e for e in events if e not in ADT_EVENTS]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not an ADT event carerelay acts on ({', '.join(ADT_EVENTS)})")
        return events

    @field_validator("fields")
    @classmethod
    def _paths(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        for path, wanted in value.items():
            if not FIELD_PATH.match(path.strip().upper()):
                raise ValueError(f"{path!r} is not a field path like PV1-16, ZPV-1 or PV1-3.1")
            if not wanted or (isinstance(wanted, list) and not all(w.strip() for w in wanted)):
                raise ValueError(f"{path}: give a value (or \"*\" for any non-empty value)")
        return value

    @model_validator(mode="after")
    def _ages_and_digest(self) -> _RuleIn:
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise ValueError("min_age is above max_age")
        if self.digest_minutes and any(t.strip().startswith("careteam:") for t in self.notify.split(",")):
            raise ValueError("a digest covers many patients: notify a role, group or person, not careteam:")
        return self


class _FileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule: list[_RuleIn] = Field(default_factory=list)


def _folded(items: list[str]) -> tuple[str, ...]:
    return tuple(i.strip().casefold() for i in items if i.strip())


def _rule(item: _RuleIn, where: str) -> PresentingRule:
    if "ordering" in [t.strip() for t in item.notify.split(",")]:
        raise ConfigError(f"invalid setting {SETTING}: {where}: notify: an ADT has no ordering provider; "
                          f"name a role, group, person or careteam:<role>")
    conditions = []
    for path, wanted in item.fields.items():
        m = FIELD_PATH.match(path.strip().upper())
        assert m is not None
        patterns = _folded(wanted if isinstance(wanted, list) else [wanted])
        conditions.append(FieldCondition(path=path.strip().upper(), segment=m.group(1), field=int(m.group(2)),
                                         component=int(m.group(3) or 1), patterns=patterns))
    return PresentingRule(
        name=item.name, events=frozenset(item.events),
        notify=check_target(item.notify, f"{SETTING}: {where}: notify", hint="careteam:<role>"),
        priority=item.priority, digest_minutes=item.digest_minutes, patient_class=_folded(item.patient_class),
        units=_folded(item.units), feeds=_folded(item.feeds), min_age=item.min_age, max_age=item.max_age,
        fields=tuple(conditions))


def load_rules(path: str | Path) -> PresentingRules:
    """Read and check the rules file; a problem is a ConfigError of one line naming file, rule and key."""
    where = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"invalid setting {SETTING}: cannot read {where}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid setting {SETTING}: {where} is not valid TOML: {exc}") from None
    try:
        parsed = _FileIn.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err["loc"])
        label = "top level"
        if len(loc) >= 2 and loc[0] == "rule" and isinstance(loc[1], int):
            raw = data.get("rule")
            items: list[object] = raw if isinstance(raw, list) else []
            item = items[loc[1]] if loc[1] < len(items) else None
            name = item.get("name") if isinstance(item, dict) else None
            label = f"rule {loc[1] + 1}" + (f" ({name!r})" if name else "")
            loc = loc[2:]
        key = ".".join(str(p) for p in loc if p not in ("list[str]", "str"))
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"invalid setting {SETTING}: {where}: {label}: {key + ': ' if key else ''}{message}") \
            from None
    names = [r.name.casefold() for r in parsed.rule]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"invalid setting {SETTING}: {where}: rule {i + 1}: name {parsed.rule[i].name!r} "
                              f"is used twice (digests are kept per rule name)")
    rules = tuple(_rule(item, f"{where}: rule {i + 1} ({item.name!r})") for i, item in enumerate(parsed.rule))
    return PresentingRules(rules=rules, source=where)


def rules_from(settings: Settings) -> PresentingRules:
    path = settings.hl7_presenting_rules_file.strip()
    return load_rules(path) if path else PresentingRules()


# ---------------------------------------------------------------- evaluating


def _age(birth: date | None, on: date) -> int | None:
    if birth is None:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def evaluate(*, session: Session, clock: Clock, actor: Actor, rules: PresentingRules, parsed: Parsed,
             feed: str, event: AdtEvent, outcome: AdtOutcome, message_id: int | None) -> list[str]:
    """Run every rule on one applied ADT event; each match leaves a hand-off. Returns one note per match."""
    if not rules.rules:
        return []
    patient = session.get_one(Patient, outcome.patient_id)
    location = event.location.text if event.location is not None else ""
    facts = Facts(event=event.event, feed=feed.casefold(), patient_class=event.patient_class,
                  unit=event.location.unit if event.location is not None else "", location=location,
                  age=_age(patient.birth_date, event.event_at.date()))
    name = f"{patient.family_name}, {patient.given_name}".strip(", ") or "(no name)"
    notes: list[str] = []
    for rule in rules.rules:
        why = rule.reasons(facts, parsed)
        if why is None:
            continue
        age = f", {facts.age} y" if facts.age is not None else ""
        where = f" at {location}" if location else ""
        handoff = patients.add_handoff(
            session=session, clock=clock, kind=HandoffKind.PRESENTING_PATIENT, patient_id=patient.id,
            encounter_id=outcome.encounter_id, subject_type="hl7_message" if message_id is not None else "encounter",
            subject_id=message_id if message_id is not None else (outcome.encounter_id or patient.id),
            summary=f"{rule.name}: ADT^{event.event}{where} ({'; '.join(why)})", target=rule.notify,
            detail={"rule": rule.name, "priority": rule.priority, "digest_minutes": rule.digest_minutes,
                    "event": event.event, "line": f"{name} (MRN {patient.mrn}{age}) ADT^{event.event}{where}"})
        if handoff is None:
            notes.append(f"presenting rule {rule.name!r} matched again (already notified)")
            continue
        record(session=session, clock=clock, actor=actor, action="hl7.presenting_rule.match", object_type="patient",
               object_id=patient.id, detail={"rule": rule.name, "event": event.event, "reasons": why,
                                             "notify": rule.notify, "hl7_message_id": message_id})
        notes.append(f"presenting rule {rule.name!r} matched")
    return notes
