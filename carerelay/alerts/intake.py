"""Clinical hand-offs become alerts: critical results, STAT and consult orders, presenting patients.

The HL7 processor records a hand-off in the same transaction as the result; this claims each one
exactly once (SKIP LOCKED on PostgreSQL) and raises its alert in the claiming transaction, so a
result is never left without an alert and never alerted twice.

Each hand-off names its target: ``ordering`` (the ordering provider), ``careteam:<role>`` (that role
on this patient's care team now) or a routing address, or several separated by commas, tried in
order: the first that reaches someone now is the alert's address, so its escalation policy's
``target:`` steps follow it. A target that reaches no one is noted in the alert; when none does,
the last one is used (and the escalation engine's "never nobody" takes over). A provider the
directory does not know cannot be reached by name: the alert goes to the fallback (the operators),
saying who was meant.

Presenting-patient matches whose rule batches them (``digest_minutes``) go to ``alerts.digest``
instead, which sends one alert per rule every N minutes.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from carerelay.alerts import digest
from carerelay.alerts import service as alerts
from carerelay.alerts.models import Alert
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.escalation.engine import DEFAULT_FALLBACK
from carerelay.integrations.hl7.store import FeedHealth, feed_actor, on_feed_silent
from carerelay.patients import service as patients
from carerelay.patients.models import ClinicalHandoff, Encounter, HandoffKind, Patient, Unit

KINDS: dict[str, tuple[str, str, list[str]]] = {
    HandoffKind.CRITICAL_RESULT: ("critical_result", "critical", ["Accept", "Call back"]),
    HandoffKind.STAT_ORDER: ("order", "stat", ["Accept", "Reject"]),
    HandoffKind.CONSULT_ORDER: ("consult_order", "urgent", ["Accept", "Reject"]),
    HandoffKind.PRESENTING_PATIENT: ("presenting_patient", "urgent", ["Seen"]),
}
CLOSING: dict[str, str] = {
    HandoffKind.CRITICAL_RESULT: "Call back to acknowledge and record the read-back.",
    HandoffKind.STAT_ORDER: "Accept to acknowledge.",
    HandoffKind.CONSULT_ORDER: "Accept the consult, or reject it to pass it on.",
}


def _concrete(handoff: ClinicalHandoff, target: str) -> tuple[str | None, str]:
    """One target as an address now (None: cannot be addressed), and a note when it cannot."""
    if target == patients.ORDERING:
        if handoff.recipient_person_id is not None:
            return f"person:{handoff.recipient_person_id}", ""
        return None, f"The ordering provider {handoff.recipient_provider_id or '(none given)'} is not in the directory."
    scheme, _, ref = target.partition(":")
    if scheme == "careteam" and "/" not in ref:
        return f"careteam:{handoff.patient_id}/{ref}", ""
    return target, ""


def address_for(session: Session, clock: Clock, handoff: ClinicalHandoff) -> tuple[str, list[str]]:
    """The first target of the hand-off's list that reaches someone now, and why earlier ones did not."""
    targets = [t.strip() for t in (handoff.target or patients.ORDERING).split(",") if t.strip()]
    notes: list[str] = []
    candidates: list[str] = []
    for target in targets:
        address, note = _concrete(handoff, target)
        if address is None:
            notes.append(note)
        else:
            candidates.append(address)
    address, more = alerts.first_reachable(session=session, at=clock.now(), addresses=candidates)
    return address or DEFAULT_FALLBACK, notes + more


def _raise(session: Session, clock: Clock, handoff: ClinicalHandoff) -> Alert | None:
    kind, priority, choices = KINDS.get(handoff.kind, (handoff.kind, "urgent", ["Accept"]))
    detail = handoff.detail or {}
    if handoff.kind == HandoffKind.CONSULT_ORDER and detail.get("stat"):
        priority = "stat"
    if handoff.kind == HandoffKind.PRESENTING_PATIENT:
        priority = str(detail.get("priority") or priority)
        if int(detail.get("digest_minutes") or 0) > 0:
            digest.add(session=session, clock=clock, handoff=handoff)
            return None
    patient = session.get_one(Patient, handoff.patient_id)
    encounter = session.get(Encounter, handoff.encounter_id) if handoff.encounter_id else None
    unit = session.get(Unit, encounter.unit_id) if encounter is not None and encounter.unit_id else None
    name = f"{patient.family_name}, {patient.given_name}".strip(", ")
    address, notes = address_for(session, clock, handoff)
    note = "".join(f" {n}" for n in notes)
    closing = CLOSING.get(handoff.kind, "Acknowledge when seen.")
    return alerts.raise_alert(
        session=session, clock=clock, actor=feed_actor("hl7"), kind=kind, priority=priority,
        title=f"{handoff.summary} — {name} (MRN {patient.mrn})"[:300],
        body=f"{handoff.summary}. Patient {name}, MRN {patient.mrn}"
             f"{', ' + encounter.location if encounter is not None and encounter.location else ''}. "
             f"{closing}{note}",
        address=address, source="hl7", source_ref=f"handoff:{handoff.id}", patient_id=patient.id,
        department_id=unit.department_id if unit is not None else None,
        location=encounter.location if encounter is not None else None, choices=choices,
        data={"handoff_id": handoff.id, "subject_type": handoff.subject_type, "subject_id": handoff.subject_id,
              "target": handoff.target},
    )


INTEGRATION_ADMINS = "group:INTEGRATION-ADMINS"


def _feed_silent(session: Session, clock: Clock, health: FeedHealth) -> None:
    """"No ADT for 10 minutes" is itself an alert: a silent feed means a census quietly going stale."""
    since = f"{health.silent_since:%Y-%m-%d %H:%M} UTC" if health.silent_since else "start-up"
    alerts.raise_alert(
        session=session, clock=clock, actor=feed_actor(health.feed), kind="feed_silent", priority="urgent",
        title=f"HL7 feed {health.feed} silent since {since}",
        body=f"No message on feed {health.feed} for over {health.silence_minutes} minutes "
             f"(last: {health.last_message_at or 'never'}). Check the sending interface engine.",
        address=INTEGRATION_ADMINS, source="hl7", source_ref=f"feed:{health.feed}:{since}",
        data={"feed": health.feed},
    )


on_feed_silent(_feed_silent)


def take_handoffs(*, db: Database, clock: Clock, limit: int = 100) -> int:
    with db.unit_of_work() as session:
        claimed = patients.claim_handoffs(session=session, clock=clock, consumer="alerts", limit=limit)
        for handoff in claimed:
            _raise(session, clock, handoff)
        return len(claimed)
