"""From a parsed HL7 message to the patients service: checks before the ACK, processing after.

``check_message`` runs before the ACK (an AE/AR names the segment and field); ``process_message``
maps the segments to plain values and calls one service function. Nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.integrations.hl7.feeds import Feed
from carerelay.integrations.hl7.models import MessageStatus
from carerelay.integrations.hl7.parser import HL7Error, Parsed, Seg
from carerelay.integrations.hl7.presenting import PresentingRules, evaluate
from carerelay.patients import service as patients
from carerelay.patients.service import (
    AdtEvent,
    CareTeamEntry,
    Demographics,
    LocationRef,
    ObservationIn,
    OrderIn,
    ProviderRef,
    ResultGroup,
    ResultPolicy,
    ResultReport,
)
from carerelay.staffing import service as staffing

PATIENT_TYPES = ("ADT", "ORU", "ORM")


@lru_cache(maxsize=32)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def parse_ts(value: str, tz: str = "UTC") -> datetime | None:
    """HL7 TS/DTM: YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ] → aware UTC; None when empty or unreadable."""
    value = value.strip()
    if not value or value == '""':
        return None
    offset: timezone | None = None
    for sign in ("+", "-"):
        idx = value.find(sign, 4)
        if idx > 0:
            zone = value[idx + 1:]
            value = value[:idx]
            if len(zone) == 4 and zone.isdigit():
                delta = timedelta(hours=int(zone[:2]), minutes=int(zone[2:]))
                offset = timezone(delta if sign == "+" else -delta)
            break
    whole, _, frac = value.partition(".")
    if not whole.isdigit() or len(whole) < 4 or len(whole) % 2:
        return None
    padded = (whole + "0101000000"[len(whole) - 4:])[:14] if len(whole) < 14 else whole[:14]
    try:
        naive = datetime.strptime(padded, "%Y%m%d%H%M%S")
    except ValueError:
        return None
    if frac.isdigit():
        naive = naive.replace(microsecond=int((frac + "000000")[:6]))
    aware = naive.replace(tzinfo=offset) if offset else naive.replace(tzinfo=_zone(tz))
    return aware.astimezone(ZoneInfo("UTC"))


def parse_date(value: str) -> date | None:
    value = value.strip()[:8]
    if len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return None


def mrn_of(parsed: Parsed) -> str:
    """PID-3: the repetition typed MR if any, else the first."""
    pid = parsed.first("PID")
    if pid is None:
        return ""
    first = ""
    for rep in range(1, max(1, pid.repetitions(3)) + 1):
        value = pid.get(3, 1, rep=rep)
        if value and not first:
            first = value
        if value and pid.get(3, 5, rep=rep).upper() == "MR":
            return value
    return first


def provider(seg: Seg, field_no: int, rep: int = 1) -> ProviderRef | None:
    """An XCN: id, family, given, prefix; type from XCN-13 or the assigning authority XCN-9."""
    pid, family = seg.get(field_no, 1, rep=rep), seg.get(field_no, 2, rep=rep)
    if not pid and not family:
        return None
    id_type = seg.get(field_no, 13, rep=rep) or seg.get(field_no, 9, rep=rep)
    return ProviderRef(id=pid, family=family, given=seg.get(field_no, 3, rep=rep), prefix=seg.get(field_no, 6, rep=rep),
                       id_type=id_type)


def _event_of(parsed: Parsed) -> str:
    trigger = parsed.msh.get(9, 2)
    if not trigger:
        evn = parsed.first("EVN")
        trigger = evn.get(1) if evn else ""
    return trigger.upper()


def check_message(parsed: Parsed, feed: Feed) -> HL7Error | None:
    """What is wrong enough to refuse (AR) or answer AE before ACKing; None when the message is acceptable."""
    msh = parsed.msh
    if not msh.get(9, 1):
        return HL7Error("MSH-9 message type is empty", segment="MSH", field=9, code="101")
    if not parsed.control_id:
        return HL7Error("MSH-10 message control id is empty", segment="MSH", field=10, code="101")
    if not feed.accepts(parsed.message_type):
        return HL7Error(f"message type {parsed.message_type} is not accepted on feed {feed.name}", segment="MSH",
                        field=9, code="200", reject=True)
    code = msh.get(9, 1).upper()
    if code in PATIENT_TYPES:
        pid = parsed.first("PID")
        if pid is None:
            return HL7Error("PID segment is missing", segment="PID", field=None, code="100")
        if not mrn_of(parsed):
            return HL7Error("PID-3 patient identifier is empty", segment="PID", field=3, code="101")
    if code == "ADT" and _event_of(parsed) == "A40":
        mrg = parsed.first("MRG")
        if mrg is None or not mrg.get(1):
            return HL7Error("A40 needs MRG-1 (prior patient identifier)", segment="MRG", field=1, code="101")
    return None


@dataclass(frozen=True)
class Outcome:
    status: MessageStatus
    note: str = ""


def demographics(parsed: Parsed) -> Demographics:
    pid = parsed.first("PID")
    assert pid is not None
    return Demographics(mrn=mrn_of(parsed), family=pid.get(5, 1), given=pid.get(5, 2), middle=pid.get(5, 3),
                        birth_date=parse_date(pid.get(7)), sex=pid.get(8))


def _visit(parsed: Parsed) -> str:
    pv1 = parsed.first("PV1")
    if pv1 is not None and pv1.get(19):
        return pv1.get(19)
    pid = parsed.first("PID")
    return pid.get(18) if pid is not None else ""


PV1_ROLES = ((7, "attending"), (8, "referring"), (9, "consulting"), (17, "admitting"))


def adt_event(parsed: Parsed, feed: Feed, message_id: int | None) -> AdtEvent:
    evn = parsed.first("EVN")
    pv1 = parsed.first("PV1")
    tz = feed.timezone
    event_at = (parse_ts(evn.get(2), tz) if evn else None) or parse_ts(parsed.msh.get(7), tz)
    team: list[CareTeamEntry] = []
    location = None
    if pv1 is not None:
        if pv1.get(3):
            location = LocationRef(unit=pv1.get(3, 1), room=pv1.get(3, 2), bed=pv1.get(3, 3),
                                   facility=pv1.get(3, 4))
        for field_no, role in PV1_ROLES:
            source = f"PV1-{field_no}"
            if pv1.get(field_no) == '""':
                team.append(CareTeamEntry(role=role, source=source, provider=None))
                continue
            for rep in range(1, pv1.repetitions(field_no) + 1):
                ref = provider(pv1, field_no, rep)
                if ref is not None:
                    team.append(CareTeamEntry(role=role, source=source, provider=ref))
    for rol in parsed.all("ROL"):
        for rep in range(1, max(1, rol.repetitions(4)) + 1):
            ref = provider(rol, 4, rep)
            if ref is None:
                continue
            team.append(CareTeamEntry(role=rol.get(3, 1) or "member", role_text=rol.get(3, 2), source="ROL",
                                      provider=ref, action=(rol.get(2) or "AD").upper(),
                                      starts_at=parse_ts(rol.get(5), tz), ends_at=parse_ts(rol.get(6), tz)))
    mrg = parsed.first("MRG")
    return AdtEvent(
        event=_event_of(parsed), patient=demographics(parsed),
        event_at=event_at or datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC")), visit_number=_visit(parsed),
        patient_class=pv1.get(2) if pv1 else "", location=location,
        admitted_at=parse_ts(pv1.get(44), tz) if pv1 else None,
        discharged_at=parse_ts(pv1.get(45), tz) if pv1 else None, care_team=team,
        merge_prior_mrn=mrg.get(1) if mrg else "", source_message_id=message_id)


def _obx_value(seg: Seg) -> str:
    """OBX-5 as a reader wants it: a coded value's text, an encapsulated document's data (ED-5, the
    base64 PDF), otherwise the first component."""
    value_type = seg.get(2).upper()
    if value_type in ("CE", "CWE"):
        return seg.get(5, 2) or seg.get(5, 1)
    if value_type == "ED":
        return seg.get(5, 5)
    return seg.get(5)


def result_report(parsed: Parsed, feed: Feed, message_id: int | None) -> ResultReport:
    tz = feed.timezone
    groups: list[ResultGroup] = []
    orc_provider: ProviderRef | None = None
    current: dict[str, object] | None = None
    observations: list[ObservationIn] = []

    def close() -> None:
        if current is not None:
            groups.append(ResultGroup(**current, observations=tuple(observations)))  # type: ignore[arg-type]

    for seg in parsed.segments:
        if seg.name == "ORC":
            orc_provider = provider(seg, 12)
        elif seg.name == "OBR":
            close()
            observations = []
            current = {"placer_order": seg.get(2), "filler_order": seg.get(3), "panel_code": seg.get(4, 1),
                       "panel_text": seg.get(4, 2), "ordering": provider(seg, 16) or orc_provider}
        elif seg.name == "OBX":
            if current is None:
                current = {"ordering": orc_provider}
                observations = []
            flags = tuple(seg.get(8, rep=r) for r in range(1, seg.repetitions(8) + 1) if seg.get(8, rep=r))
            value = _obx_value(seg)
            observations.append(ObservationIn(
                set_id=seg.get(1), value_type=seg.get(2), code=seg.get(3, 1), text=seg.get(3, 2),
                coding_system=seg.get(3, 3), value=value, units=seg.get(6, 1), reference_range=seg.get(7),
                abnormal_flags=flags, result_status=seg.get(11), observed_at=parse_ts(seg.get(14), tz)))
        elif seg.name == "NTE" and observations:
            last = observations[-1]
            text = seg.get(3)
            observations[-1] = ObservationIn(**{**last.__dict__, "notes": (last.notes + "\n" + text).strip()})
    close()
    return ResultReport(patient=demographics(parsed), groups=tuple(groups), visit_number=_visit(parsed),
                        source_message_id=message_id)


def orders(parsed: Parsed, feed: Feed, message_id: int | None) -> list[OrderIn]:
    tz = feed.timezone
    found: list[dict[str, object]] = []
    for seg in parsed.segments:
        if seg.name == "ORC":
            found.append({"control": seg.get(1).upper(), "placer_order": seg.get(2), "filler_order": seg.get(3),
                          "priorities": [seg.get(7, 6)], "ordering": provider(seg, 12),
                          "ordered_at": parse_ts(seg.get(9), tz)})
        elif seg.name == "OBR":
            if not found:
                found.append({"priorities": []})
            o = found[-1]
            o["code"], o["text"] = seg.get(4, 1), seg.get(4, 2)
            o["placer_order"] = o.get("placer_order") or seg.get(2)
            o["filler_order"] = o.get("filler_order") or seg.get(3)
            o["ordering"] = o.get("ordering") or provider(seg, 16)
            o["ordered_at"] = o.get("ordered_at") or parse_ts(seg.get(6), tz)
            o["priorities"] = [*o["priorities"], seg.get(5), seg.get(27, 6)]  # type: ignore[misc]
        elif seg.name == "TQ1" and found:
            found[-1]["priorities"] = [*found[-1]["priorities"], seg.get(9, 1)]  # type: ignore[misc]
    pat = demographics(parsed)
    out = []
    for o in found:
        pr = tuple(p for p in o.pop("priorities") if p)  # type: ignore[attr-defined]
        out.append(OrderIn(patient=pat, priorities=pr, visit_number=_visit(parsed), source_message_id=message_id,
                           **o))  # type: ignore[arg-type]
    return out


def process_message(*, session: Session, clock: Clock, actor: Actor, parsed: Parsed, feed: Feed,
                    policy: ResultPolicy, stat_priorities: tuple[str, ...], message_id: int | None,
                    presenting: PresentingRules | None = None) -> Outcome:
    """Apply one stored message, then (ADT) the presenting-patient rules. Raises on failure (the
    caller records the error and rolls back)."""
    code, trigger = parsed.msh.get(9, 1).upper(), _event_of(parsed)
    routing = feed.routing or policy.routing
    if code == "ADT":
        if trigger not in patients.ADT_EVENTS:
            return Outcome(MessageStatus.FILTERED, f"ADT^{trigger} is not acted on")
        event = adt_event(parsed, feed, message_id)
        outcome = patients.apply_adt(session=session, clock=clock, actor=actor, event=event,
                                     provider_fields=feed.provider_fields)
        if outcome.encounter_id is not None:
            # ROL care roles (RN…) are staff assignments too; a transfer or discharge ends them.
            roles_sent = event.care_team if event.event not in ("A03", "A11", "A12", "A13") else ()
            outcome.notes.extend(staffing.apply_adt_roles(
                session=session, clock=clock, actor=actor, encounter_id=outcome.encounter_id, entries=roles_sent,
                provider_fields=feed.provider_fields,
                message_ref=f"HL7 message {message_id}" if message_id is not None else f"HL7 {parsed.control_id}"))
        notes = list(outcome.notes)
        if presenting is not None and presenting.rules:
            notes += evaluate(session=session, clock=clock, actor=actor, rules=presenting, parsed=parsed,
                              feed=feed.name, event=event, outcome=outcome, message_id=message_id)
        return Outcome(MessageStatus.PROCESSED, "; ".join(notes))
    if code == "ORU" and trigger == "R01":
        rows = patients.record_results(session=session, clock=clock, actor=actor,
                                       report=result_report(parsed, feed, message_id), policy=policy,
                                       routing=routing)
        critical = sum(1 for r in rows if r.critical)
        return Outcome(MessageStatus.PROCESSED, f"{len(rows)} observations, {critical} critical" if critical else "")
    if code == "ORM" and trigger == "O01":
        stat = consults = 0
        for order in orders(parsed, feed, message_id):
            row = patients.record_order(session=session, clock=clock, actor=actor, order=order,
                                        stat_priorities=stat_priorities, provider_fields=feed.provider_fields,
                                        routing=routing)
            stat += int(row.stat)
            consults += int(row.code in routing.consult_orders)
        parts = [f"{stat} STAT order(s)" if stat else "", f"{consults} consult order(s)" if consults else ""]
        return Outcome(MessageStatus.PROCESSED, ", ".join(p for p in parts if p))
    return Outcome(MessageStatus.FILTERED, f"{parsed.message_type} is stored but not acted on")
