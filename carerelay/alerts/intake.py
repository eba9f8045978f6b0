"""Clinical hand-offs become alerts: a critical result to its ordering provider, a STAT order likewise.

The HL7 processor records a hand-off in the same transaction as the result; this claims each one
exactly once (SKIP LOCKED on PostgreSQL) and raises its alert in the claiming transaction, so a
result is never left without an alert and never alerted twice. A provider the directory does not
know cannot be reached by name: the alert goes to the fallback (the operators), saying who was meant.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from carerelay.alerts import service as alerts
from carerelay.alerts.models import Alert
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.escalation.engine import DEFAULT_FALLBACK
from carerelay.integrations.hl7.store import FeedHealth, feed_actor, on_feed_silent
from carerelay.patients import service as patients
from carerelay.patients.models import ClinicalHandoff, Encounter, Patient, Unit

KINDS = {
    "critical_result": ("critical_result", "critical", ["Accept", "Call back"]),
    "stat_order": ("order", "stat", ["Accept", "Reject"]),
}


def _raise(session: Session, clock: Clock, handoff: ClinicalHandoff) -> Alert:
    kind, priority, choices = KINDS.get(handoff.kind, (handoff.kind, "urgent", ["Accept"]))
    patient = session.get_one(Patient, handoff.patient_id)
    encounter = session.get(Encounter, handoff.encounter_id) if handoff.encounter_id else None
    unit = session.get(Unit, encounter.unit_id) if encounter is not None and encounter.unit_id else None
    name = f"{patient.family_name}, {patient.given_name}".strip(", ")
    if handoff.recipient_person_id is not None:
        address, note = f"person:{handoff.recipient_person_id}", ""
    else:
        address = DEFAULT_FALLBACK
        note = f" The ordering provider {handoff.recipient_provider_id or '(none given)'} is not in the directory."
    return alerts.raise_alert(
        session=session, clock=clock, actor=feed_actor("hl7"), kind=kind, priority=priority,
        title=f"{handoff.summary} — {name} (MRN {patient.mrn})"[:300],
        body=f"{handoff.summary}. Patient {name}, MRN {patient.mrn}"
             f"{', ' + encounter.location if encounter is not None and encounter.location else ''}. "
             f"Call back to acknowledge and record the read-back.{note}",
        address=address, source="hl7", source_ref=f"handoff:{handoff.id}", patient_id=patient.id,
        department_id=unit.department_id if unit is not None else None,
        location=encounter.location if encounter is not None else None, choices=choices,
        data={"handoff_id": handoff.id, "subject_type": handoff.subject_type, "subject_id": handoff.subject_id},
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
